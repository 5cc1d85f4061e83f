//! `IpamDriver.*`: netd's address pools for Docker's `--ipam-driver`.

use serde_json::{json, Value};

use super::{
    body, ok,
    wire::{self, required, AddressRequest, RequestPool},
    Failure,
};
use crate::{
    config::network::SubnetSpec,
    engine::{AddressUse, ADDRESS_SPACE},
    shared::Shared,
};

pub async fn call(d: &Shared, method: &str, bytes: &[u8]) -> Result<Value, Failure> {
    match method {
        "GetCapabilities" => {
            Ok(json!({"RequiresMACAddress": false, "RequiresRequestReplay": false}))
        }
        "GetDefaultAddressSpaces" => Ok(json!({
            "LocalDefaultAddressSpace": ADDRESS_SPACE,
            "GlobalDefaultAddressSpace": ADDRESS_SPACE,
        })),
        "RequestPool" => request_pool(d, body(bytes)?).await,
        "ReleasePool" => {
            let req: AddressRequest = body(bytes)?;
            let id = required("PoolID", &req.pool_id)?;
            d.engine.lock().await.release_pool(id)?;
            ok()
        }
        "RequestAddress" => {
            let req: AddressRequest = body(bytes)?;
            let id = required("PoolID", &req.pool_id)?;
            let ip = match req.address.as_str() {
                "" => None,
                a => Some(wire::address("Address", a)?.0),
            };
            let usage = match req.options.get(wire::OPT_ADDRESS_TYPE).map(String::as_str) {
                Some(wire::ADDRESS_TYPE_GATEWAY) => AddressUse::Gateway,
                _ => AddressUse::Endpoint,
            };
            let (ip, prefix) = d.engine.lock().await.request_address(id, ip, usage)?;
            Ok(json!({"Address": format!("{ip}/{prefix}"), "Data": {}}))
        }
        "ReleaseAddress" => {
            let req: AddressRequest = body(bytes)?;
            let id = required("PoolID", &req.pool_id)?;
            let (ip, _) = wire::address("Address", required("Address", &req.address)?)?;
            d.engine.lock().await.release_address(id, ip)?;
            ok()
        }
        other => Err(Failure::Unknown(format!("IpamDriver.{other}"))),
    }
}

async fn request_pool(d: &Shared, req: RequestPool) -> Result<Value, Failure> {
    let (subnet, range) = pool_request(&req)?;
    let pool = d.engine.lock().await.request_pool(subnet, range).await?;
    Ok(json!({"PoolID": pool.id, "Pool": pool.subnet.to_string(), "Data": {}}))
}

/// The checks a call's body passes before the engine sees it, alone (the fuzz targets).
pub fn check(method: &str, bytes: &[u8]) -> Result<(), Failure> {
    match method {
        "RequestPool" => pool_request(&body(bytes)?).map(drop),
        "RequestAddress" | "ReleaseAddress" | "ReleasePool" => {
            let req: AddressRequest = body(bytes)?;
            required("PoolID", &req.pool_id)?;
            if !req.address.is_empty() {
                wire::address("Address", &req.address)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The pool and sub-pool a RequestPool asks for, checked as a network's would be.
fn pool_request(
    req: &RequestPool,
) -> Result<
    (
        Option<ipnetwork::Ipv4Network>,
        Option<ipnetwork::Ipv4Network>,
    ),
    Failure,
> {
    if req.v6 {
        return Err(Failure::Refused(
            "V6: netd's IPAM hands out IPv4 pools only".into(),
        ));
    }
    if req.address_space != ADDRESS_SPACE {
        return Err(Failure::Refused(format!(
            "AddressSpace: {:?} is not netd's address space {ADDRESS_SPACE:?}",
            req.address_space
        )));
    }
    // The same checks as a network's subnet and range: a pool is granted only if a
    // network could be made on it (no loopback, multicast or /32 pool is persisted).
    let (subnet, range) = match (req.pool.as_str(), req.sub_pool.as_str()) {
        ("", "") => (None, None),
        ("", _) => (None, Some(wire::subnet("SubPool", &req.sub_pool)?)),
        (pool, sub) => {
            let sub = Some(sub).filter(|s| !s.is_empty());
            let spec = SubnetSpec::parse(pool, sub, None)
                .map_err(|e| Failure::Refused(format!("Pool {pool:?}: {e}")))?;
            (Some(spec.subnet), spec.ip_range)
        }
    };
    Ok((subnet, range))
}
