//! Overlay networks and their addresses on the in-memory store.

use std::{net::Ipv4Addr, sync::Arc};

use super::{
    addresses::{self, AddressClaim, AddressError},
    conformance,
    memory::MemoryStore,
    overlay::{OverlayError, OverlayNetwork, Overlays, FIRST_VNI},
    store::ClusterStore,
};
use crate::config::subnet::SubnetSpec;

fn net(name: &str, subnet: &str, vni: u32) -> OverlayNetwork {
    OverlayNetwork {
        id: format!("{name}-id"),
        name: name.into(),
        vni,
        subnet: SubnetSpec::parse(subnet, None, None).unwrap(),
        internal: false,
        icc: true,
        vip_aliases: false,
        mtu: 0,
        labels: Default::default(),
        created: chrono::Utc::now(),
    }
}

fn on(node: &str, endpoint: &str) -> AddressClaim {
    AddressClaim {
        node: node.into(),
        endpoint: endpoint.into(),
    }
}

#[tokio::test]
async fn names_and_vnis_are_unique() {
    let overlays = Overlays::new(Arc::new(MemoryStore::new()));
    let blue = overlays
        .create(net("blue", "10.1.0.0/24", 0))
        .await
        .unwrap();
    let green = overlays
        .create(net("green", "10.2.0.0/24", 0))
        .await
        .unwrap();
    assert_eq!((blue.vni, green.vni), (FIRST_VNI, FIRST_VNI + 1));
    let again = overlays.create(net("blue", "10.3.0.0/24", 0)).await;
    assert!(matches!(again, Err(OverlayError::NameTaken(n)) if n == "blue"));
    let red = overlays.create(net("red", "10.4.0.0/24", FIRST_VNI)).await;
    let e = red.unwrap_err().to_string();
    assert!(e.contains("4097") && e.contains("blue-id"), "{e}");
    let names: Vec<_> = overlays
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.name)
        .collect();
    assert_eq!(names, ["blue", "green"]);
}

#[tokio::test]
async fn a_network_in_use_is_kept_naming_its_hosts() {
    let store: Arc<dyn ClusterStore> = Arc::new(MemoryStore::new());
    let overlays = Overlays::new(store.clone());
    let blue = overlays
        .create(net("blue", "10.1.0.0/24", 0))
        .await
        .unwrap();
    let a = addresses::claim(store.as_ref(), &blue, &on("host1", "e1"), None)
        .await
        .unwrap();
    addresses::claim(store.as_ref(), &blue, &on("host2", "e2"), None)
        .await
        .unwrap();
    let e = overlays.remove("blue").await.unwrap_err().to_string();
    assert!(e.contains("host1, host2"), "{e}");
    // Only its holder gives an address back.
    assert!(
        !addresses::release(store.as_ref(), &blue.id, a, &on("host2", "e1"))
            .await
            .unwrap()
    );
    assert!(
        addresses::release(store.as_ref(), &blue.id, a, &on("host1", "e1"))
            .await
            .unwrap()
    );
    let e = overlays.remove("blue").await.unwrap_err().to_string();
    assert!(e.contains("host2") && !e.contains("host1"), "{e}");
    let held = overlays.claims(&blue).await.unwrap();
    for (ip, claim) in held {
        addresses::release(store.as_ref(), &blue.id, ip, &claim)
            .await
            .unwrap();
    }
    overlays.remove("blue").await.unwrap();
    assert!(matches!(
        overlays.get("blue").await,
        Err(OverlayError::NotFound(_))
    ));
    // Its VNI is free again.
    let next = overlays
        .create(net("green", "10.2.0.0/24", 0))
        .await
        .unwrap();
    assert_eq!(next.vni, FIRST_VNI);
}

#[tokio::test]
async fn addresses_are_in_range_and_run_out() {
    let store: Arc<dyn ClusterStore> = Arc::new(MemoryStore::new());
    let small = Overlays::new(store.clone())
        .create(net("small", "10.9.0.0/29", 0))
        .await
        .unwrap();
    let mut got = Vec::new();
    for i in 0..5 {
        let claim = on("host1", &format!("e{i}"));
        got.push(
            addresses::claim(store.as_ref(), &small, &claim, None)
                .await
                .unwrap(),
        );
    }
    got.sort();
    let want: Vec<Ipv4Addr> = (2..=6).map(|i| Ipv4Addr::new(10, 9, 0, i)).collect();
    assert_eq!(got, want, "neither network, gateway nor broadcast");
    let more = addresses::claim(store.as_ref(), &small, &on("host1", "e5"), None).await;
    assert!(matches!(more, Err(AddressError::Exhausted(_))));
    let outside = Some(Ipv4Addr::new(10, 9, 1, 1));
    let e = addresses::claim(store.as_ref(), &small, &on("host1", "x"), outside).await;
    assert!(e.unwrap_err().to_string().contains("10.9.1.1"));
}

#[tokio::test]
async fn concurrent_claims_on_three_hosts_are_distinct() {
    conformance::concurrent_claims_are_distinct(Arc::new(MemoryStore::new()), "blue", 3, 50).await;
}
