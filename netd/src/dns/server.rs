//! One DNS server per network with names, on its gateway address, port 53, UDP and TCP
//! (hickory-server). Container names are answered from [`Names`]; any other name is forwarded
//! to the host's resolvers, except from internal networks, which reach nothing outside.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::{atomic::Ordering, Arc, RwLock},
    time::Duration,
};

use hickory_server::{
    net::runtime::Time,
    proto::{
        op::{Message, MessageType, Metadata, OpCode, ResponseCode},
        rr::{
            rdata::{A, PTR},
            Name, RData, Record, RecordType,
        },
    },
    server::{Request, RequestHandler, ResponseHandler, ResponseInfo},
    zone_handler::MessageResponseBuilder,
};

use super::{forward, names::Names};

/// TTL of container records: short, since containers come and go (Docker uses 600).
const TTL: u32 = 60;

/// What every server of the daemon reads: the current names, swapped whole on each change.
pub type SharedNames = Arc<RwLock<Arc<Names>>>;

/// Forwards a network's server has in flight at most: an upstream that does not answer holds
/// each for seconds, and a flood of unknown names would hold memory without bound.
pub const MAX_FORWARDS: usize = 128;

/// Shared by a network's UDP and TCP sides (every field is shared or small).
#[derive(Clone)]
pub struct Handler {
    pub counters: Arc<super::DnsCounters>,
    pub network: String,
    pub internal: bool,
    /// Who asks, for a server in one container's namespace: its queries come from loopback.
    pub client: Option<Ipv4Addr>,
    pub names: SharedNames,
    pub upstreams: Arc<Vec<SocketAddr>>,
    /// [`MAX_FORWARDS`] turns; a query that finds none gets SERVFAIL at once.
    pub forwards: Arc<tokio::sync::Semaphore>,
}

/// What the server answers: records of a container name, or a relayed upstream response.
enum Answer {
    Records(Vec<Record>),
    /// The name is not known here and may not leave (internal network).
    Refused,
    /// No name of ours: the upstream's response, or SERVFAIL when none answered.
    Upstream(Option<Message>),
}

impl Handler {
    fn names(&self) -> Arc<Names> {
        Arc::clone(&self.names.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Records for a container name or address; `None` when neither is one of ours.
    fn local(&self, client: Ipv4Addr, name: &Name, qtype: RecordType) -> Option<Vec<Record>> {
        let names = self.names();
        if qtype == RecordType::PTR {
            let ip = match name.parse_arpa_name().ok()?.addr() {
                IpAddr::V4(ip) => ip,
                IpAddr::V6(_) => return None,
            };
            let target = names.reverse(&self.network, client, ip)?;
            let target = Name::from_ascii(format!("{target}.")).ok()?;
            return Some(vec![Record::from_rdata(
                name.clone(),
                TTL,
                RData::PTR(PTR(target)),
            )]);
        }
        let addrs = names.lookup(&self.network, client, &name.to_ascii())?;
        // A known name with no record of the asked type (AAAA, say): an empty answer, so
        // that clients do not wait for one elsewhere.
        if qtype != RecordType::A && qtype != RecordType::ANY {
            return Some(Vec::new());
        }
        Some(
            addrs
                .into_iter()
                .map(|ip| Record::from_rdata(name.clone(), TTL, RData::A(A(ip))))
                .collect(),
        )
    }

    async fn answer(&self, request: &Request) -> Option<Answer> {
        let info = request.request_info().ok()?;
        let client = match (self.client, request.src().ip()) {
            (Some(ip), _) | (None, IpAddr::V4(ip)) => ip,
            (None, IpAddr::V6(_)) => Ipv4Addr::UNSPECIFIED,
        };
        let name: Name = info.query.name().into();
        if let Some(records) = self.local(client, &name, info.query.query_type()) {
            return Some(Answer::Records(records));
        }
        if self.internal {
            return Some(Answer::Refused);
        }
        // Names of the network keep answering whatever the upstreams do: only forwards wait.
        let Ok(_turn) = self.forwards.try_acquire() else {
            return Some(Answer::Upstream(None));
        };
        Some(Answer::Upstream(
            forward::query(&self.upstreams, request.as_slice()).await,
        ))
    }
}

fn metadata(request: &Request, code: ResponseCode, authoritative: bool) -> Metadata {
    let mut m = Metadata::new(request.metadata.id, MessageType::Response, OpCode::Query);
    m.recursion_desired = request.metadata.recursion_desired;
    m.recursion_available = true;
    m.authoritative = authoritative;
    m.response_code = code;
    m
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response: R,
    ) -> ResponseInfo {
        let builder = MessageResponseBuilder::from_message_request(request);
        let answer = self.answer(request).await;
        self.counters.queries.fetch_add(1, Ordering::Relaxed);
        let failed = match &answer {
            None | Some(Answer::Refused) | Some(Answer::Upstream(None)) => true,
            Some(Answer::Upstream(Some(up))) => up.metadata.response_code == ResponseCode::ServFail,
            Some(Answer::Records(_)) => false,
        };
        if failed {
            self.counters.failures.fetch_add(1, Ordering::Relaxed);
        }
        let sent = match answer {
            None => {
                let m = metadata(request, ResponseCode::FormErr, false);
                response.send_response(builder.build_no_records(m)).await
            }
            Some(Answer::Records(records)) => {
                let m = metadata(request, ResponseCode::NoError, true);
                let none: [&Record; 0] = [];
                response
                    .send_response(builder.build(m, records.iter(), none, none, none))
                    .await
            }
            Some(Answer::Refused) => {
                let m = metadata(request, ResponseCode::Refused, false);
                response.send_response(builder.build_no_records(m)).await
            }
            Some(Answer::Upstream(None)) => {
                let m = metadata(request, ResponseCode::ServFail, false);
                response.send_response(builder.build_no_records(m)).await
            }
            Some(Answer::Upstream(Some(up))) => {
                let m = metadata(request, up.metadata.response_code, false);
                let none: [&Record; 0] = [];
                let additionals = up.additionals.iter();
                response
                    .send_response(builder.build(
                        m,
                        up.answers.iter(),
                        up.authorities.iter(),
                        none,
                        additionals,
                    ))
                    .await
            }
        };
        match sent {
            Ok(info) => info,
            Err(e) => {
                log::debug!("DNS response to {}: {e}", request.src());
                if !failed {
                    self.counters.failures.fetch_add(1, Ordering::Relaxed);
                }
                let mut m = metadata(request, ResponseCode::ServFail, false);
                m.message_type = MessageType::Response;
                hickory_server::proto::op::Header {
                    metadata: m,
                    counts: Default::default(),
                }
                .into()
            }
        }
    }
}

/// How long a TCP client may stay silent before the server closes the connection: a client
/// that sends half a query and stops costs a task this long, never forever.
pub const TCP_TIMEOUT: Duration = Duration::from_secs(5);
