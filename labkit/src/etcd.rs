//! A real etcd cluster for the cluster tests: members as plain processes (the package's own
//! service never runs), each on an address of the test's choosing, optionally inside a lab
//! namespace, with TLS for clients and peers from a CA made for the run. On drop every member
//! is killed and its data removed.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use crate::{wait_until, LabError, Result};

/// Where one member listens: its address, ports, and the namespace it runs in (`None`: the
/// test's own, on loopback only).
#[derive(Clone, Debug)]
pub struct MemberAt {
    pub ip: String,
    pub client_port: u16,
    pub peer_port: u16,
    pub netns: Option<String>,
}

impl MemberAt {
    /// `n` members on loopback, with distinct ports the kernel picked as free (each held
    /// until all are picked).
    pub fn loopback(n: usize) -> Result<Vec<Self>> {
        let err = |e: std::io::Error| LabError(format!("finding a free port: {e}"));
        let held: Vec<std::net::TcpListener> = (0..2 * n)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").map_err(err))
            .collect::<Result<_>>()?;
        let ports: Vec<u16> = held
            .iter()
            .map(|l| l.local_addr().map(|a| a.port()).map_err(err))
            .collect::<Result<_>>()?;
        Ok(ports
            .chunks(2)
            .map(|p| Self {
                ip: "127.0.0.1".into(),
                client_port: p[0],
                peer_port: p[1],
                netns: None,
            })
            .collect())
    }
}

/// The files of the run's TLS: a CA, one certificate for every member (server and peer),
/// and a client's.
pub struct Tls {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl Tls {
    /// Makes a CA under `dir` and certificates for `ips` (as IP subject names).
    pub fn make(dir: &Path, ips: &[&str]) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| LabError(format!("{}: {e}", dir.display())))?;
        let p = |name: &str| dir.join(name);
        let sans: Vec<String> = ips.iter().map(|ip| format!("IP:{ip}")).collect();
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=netd-test-ca",
            "-keyout",
            &s(&p("ca.key")),
            "-out",
            &s(&p("ca.pem")),
        ])?;
        let sign = |name: &str, ext: String| -> Result<()> {
            openssl(&[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-subj",
                &format!("/CN={name}"),
                "-keyout",
                &s(&p(&format!("{name}.key"))),
                "-out",
                &s(&p(&format!("{name}.csr"))),
            ])?;
            std::fs::write(p(&format!("{name}.ext")), ext)
                .map_err(|e| LabError(format!("writing {name}.ext: {e}")))?;
            openssl(&[
                "x509",
                "-req",
                "-days",
                "2",
                "-in",
                &s(&p(&format!("{name}.csr"))),
                "-CA",
                &s(&p("ca.pem")),
                "-CAkey",
                &s(&p("ca.key")),
                "-CAcreateserial",
                "-extfile",
                &s(&p(&format!("{name}.ext"))),
                "-out",
                &s(&p(&format!("{name}.pem"))),
            ])
        };
        sign(
            "member",
            format!(
                "subjectAltName={}\nextendedKeyUsage=serverAuth,clientAuth\n",
                sans.join(",")
            ),
        )?;
        sign("client", "extendedKeyUsage=clientAuth\n".into())?;
        Ok(Self {
            ca: p("ca.pem"),
            server_cert: p("member.pem"),
            server_key: p("member.key"),
            client_cert: p("client.pem"),
            client_key: p("client.key"),
        })
    }
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn openssl(args: &[&str]) -> Result<()> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .map_err(|e| LabError(format!("running openssl: {e}")))?;
    match out.status.success() {
        true => Ok(()),
        false => Err(LabError(format!(
            "openssl {}: {}",
            args.first().unwrap_or(&""),
            String::from_utf8_lossy(&out.stderr)
        ))),
    }
}

pub struct EtcdCluster {
    dir: PathBuf,
    pub members: Vec<MemberAt>,
    pub tls: Tls,
    children: Vec<Option<Child>>,
}

impl EtcdCluster {
    /// Starts one member at each of `at`, with TLS, data under `dir`, and waits until every
    /// member reports itself healthy.
    pub fn start(dir: &Path, at: Vec<MemberAt>) -> Result<Self> {
        let ips: Vec<&str> = at.iter().map(|m| m.ip.as_str()).collect();
        let tls = Tls::make(&dir.join("tls"), &ips)?;
        let mut cluster = Self {
            dir: dir.to_path_buf(),
            children: at.iter().map(|_| None).collect(),
            members: at,
            tls,
        };
        for i in 0..cluster.members.len() {
            cluster.start_member(i, true)?;
        }
        cluster.wait_healthy(Duration::from_secs(60))?;
        Ok(cluster)
    }

    /// `etcd://` addresses of the members, for `--cluster-store`.
    pub fn store_address(&self) -> String {
        let members: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{}:{}", m.ip, m.client_port))
            .collect();
        format!("etcd://{}", members.join(","))
    }

    fn name(i: usize) -> String {
        format!("m{i}")
    }

    fn start_member(&mut self, i: usize, new: bool) -> Result<()> {
        let m = &self.members[i];
        let peers: Vec<String> = self
            .members
            .iter()
            .enumerate()
            .map(|(j, p)| format!("{}=https://{}:{}", Self::name(j), p.ip, p.peer_port))
            .collect();
        let data = self.dir.join(Self::name(i));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{}.log", Self::name(i))))
            .map_err(|e| LabError(format!("etcd log: {e}")))?;
        let err = log
            .try_clone()
            .map_err(|e| LabError(format!("etcd log: {e}")))?;
        let mut cmd = match &m.netns {
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net=/run/netns/{ns}")).arg("etcd");
                c
            }
            None => Command::new("etcd"),
        };
        let client = format!("https://{}:{}", m.ip, m.client_port);
        let peer = format!("https://{}:{}", m.ip, m.peer_port);
        cmd.arg("--name")
            .arg(Self::name(i))
            .arg("--data-dir")
            .arg(&data)
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &peers.join(",")])
            .args(["--initial-cluster-token", "netd-test"])
            .args([
                "--initial-cluster-state",
                if new { "new" } else { "existing" },
            ])
            .args(["--cert-file", &s(&self.tls.server_cert)])
            .args(["--key-file", &s(&self.tls.server_key)])
            .args(["--trusted-ca-file", &s(&self.tls.ca), "--client-cert-auth"])
            .args(["--peer-cert-file", &s(&self.tls.server_cert)])
            .args(["--peer-key-file", &s(&self.tls.server_key)])
            .args([
                "--peer-trusted-ca-file",
                &s(&self.tls.ca),
                "--peer-client-cert-auth",
            ])
            .args(["--logger", "zap", "--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err);
        // A test or benchmark killed without its teardown takes its members with it.
        // SAFETY: prctl(2) is async-signal-safe.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| LabError(format!("starting etcd member {i}: {e}")))?;
        self.children[i] = Some(child);
        Ok(())
    }

    /// SIGKILLs member `i` and reaps it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.children[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts member `i` again on its data.
    pub fn restart(&mut self, i: usize) -> Result<()> {
        self.kill(i);
        self.start_member(i, false)
    }

    /// `curl` of member `i`'s client URL `path`, with the client's certificate; its body.
    fn curl(&self, i: usize, path: &str, body: Option<&str>) -> Option<String> {
        let m = &self.members[i];
        let mut curl = match &m.netns {
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net=/run/netns/{ns}")).arg("curl");
                c
            }
            None => Command::new("curl"),
        };
        curl.args(["-s", "--max-time", "2", "--cacert", &s(&self.tls.ca)])
            .args(["--cert", &s(&self.tls.client_cert)])
            .args(["--key", &s(&self.tls.client_key)]);
        if let Some(body) = body {
            curl.args(["-X", "POST", "-d", body]);
        }
        curl.arg(format!("https://{}:{}{path}", m.ip, m.client_port));
        let out = curl.output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Whether member `i` answers its health check.
    pub fn healthy(&self, i: usize) -> bool {
        self.curl(i, "/health", None)
            .is_some_and(|b| b.contains("\"health\":\"true\""))
    }

    /// A counter of member `i`'s Prometheus metrics (summed over its label sets).
    pub fn metric(&self, i: usize, name: &str) -> Option<f64> {
        let body = self.curl(i, "/metrics", None)?;
        let values = body
            .lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok());
        Some(values.sum())
    }

    /// The index of the member that is the leader, as the running members report it.
    pub fn leader(&self) -> Option<usize> {
        let field = |body: &str, name: &str| -> Option<String> {
            let at = body.find(&format!("\"{name}\":\""))? + name.len() + 4;
            Some(body[at..].split('"').next()?.to_string())
        };
        let mut ids = Vec::new();
        let mut leader = None;
        for i in 0..self.members.len() {
            if self.children[i].is_none() {
                ids.push(None);
                continue;
            }
            let body = self.curl(i, "/v3/maintenance/status", Some("{}"));
            let body = body.unwrap_or_default();
            ids.push(field(&body, "member_id"));
            leader = leader.or(field(&body, "leader"));
        }
        let leader = leader?;
        ids.iter()
            .position(|id| id.as_deref() == Some(leader.as_str()))
    }

    /// Waits (bounded) until every running member is healthy.
    pub fn wait_healthy(&self, limit: Duration) -> Result<()> {
        let running: Vec<usize> = (0..self.members.len())
            .filter(|i| self.children[*i].is_some())
            .collect();
        match wait_until(limit, || running.iter().all(|i| self.healthy(*i))) {
            true => Ok(()),
            false => Err(LabError(format!(
                "etcd members not healthy after {limit:?}; logs in {}",
                self.dir.display()
            ))),
        }
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill(i);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
