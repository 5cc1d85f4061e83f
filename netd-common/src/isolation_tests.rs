use super::*;
use crate::nat::PROTO_ICMP;

fn be(a: [u8; 4]) -> u32 {
    u32::from_ne_bytes(a)
}

const MAC_A: [u8; 6] = [2, 0x42, 10, 1, 0, 2];
const MAC_B: [u8; 6] = [2, 0x42, 10, 1, 0, 3];
const GW_MAC: [u8; 6] = [2, 0x4e, 0x44, 1, 0, 1];

fn ep() -> Endpoint {
    Endpoint {
        addr_be: be([10, 1, 0, 2]),
        network: 7,
        mac: MAC_A,
        flags: 0,
        _pad: 0,
    }
}

/// 10.1.0.0/24, gateway 10.1.0.1.
fn net(flags: u32) -> NetworkPolicy {
    NetworkPolicy {
        subnet_be: be([10, 1, 0, 0]),
        mask_be: be([255, 255, 255, 0]),
        gateway_be: be([10, 1, 0, 1]),
        flags,
        gateway_mac: GW_MAC,
        _pad: [0; 2],
    }
}

fn to(net: &NetworkPolicy, dst: [u8; 4], l4: Option<(u8, u16)>) -> Result<(), DropReason> {
    // 10.2.0.0/16 is another netd network in these tests.
    check_ipv4_destination(net, be(dst), l4, || dst[0] == 10 && dst[1] == 2)
}

const UDP53: Option<(u8, u16)> = Some((PROTO_UDP, 53u16.to_be()));
const TCP53: Option<(u8, u16)> = Some((PROTO_TCP, 53u16.to_be()));
const TCP80: Option<(u8, u16)> = Some((PROTO_TCP, 80u16.to_be()));
const PING: Option<(u8, u16)> = Some((PROTO_ICMP, 0));

#[test]
fn ordinary_network_reaches_members_gateway_and_outside_but_not_other_networks() {
    let n = net(0);
    assert_eq!(to(&n, [10, 1, 0, 3], TCP80), Ok(()));
    assert_eq!(to(&n, [10, 1, 0, 1], TCP80), Ok(()));
    assert_eq!(to(&n, [192, 0, 2, 9], PING), Ok(()));
    assert_eq!(to(&n, [10, 2, 0, 5], TCP80), Err(DropReason::OtherNetwork));
    assert_eq!(
        to(&n, [10, 2, 0, 1], PING),
        Err(DropReason::OtherNetwork),
        "another network's gateway"
    );
    assert_eq!(to(&n, [255, 255, 255, 255], None), Ok(()));
    assert_eq!(to(&n, [224, 0, 0, 251], UDP53), Ok(()));
}

#[test]
fn internal_network_reaches_members_and_gateway_dns_only() {
    let n = net(NET_INTERNAL);
    assert_eq!(to(&n, [10, 1, 0, 3], TCP80), Ok(()));
    assert_eq!(to(&n, [10, 1, 0, 1], UDP53), Ok(()));
    assert_eq!(to(&n, [10, 1, 0, 1], TCP53), Ok(()));
    assert_eq!(to(&n, [10, 1, 0, 1], TCP80), Err(DropReason::Internal));
    assert_eq!(to(&n, [10, 1, 0, 1], PING), Err(DropReason::Internal));
    assert_eq!(to(&n, [10, 1, 0, 1], None), Err(DropReason::Internal));
    assert_eq!(to(&n, [192, 0, 2, 9], UDP53), Err(DropReason::Internal));
    assert_eq!(to(&n, [10, 2, 0, 5], TCP80), Err(DropReason::OtherNetwork));
    assert_eq!(to(&n, [10, 1, 0, 255], None), Ok(()), "subnet broadcast");
}

#[test]
fn icc_off_keeps_members_apart_but_not_from_gateway_or_outside() {
    let n = net(NET_ICC_OFF);
    assert_eq!(to(&n, [10, 1, 0, 3], TCP80), Err(DropReason::Icc));
    assert_eq!(to(&n, [10, 1, 0, 255], None), Err(DropReason::Icc));
    assert_eq!(to(&n, [255, 255, 255, 255], None), Err(DropReason::Icc));
    assert_eq!(to(&n, [239, 1, 1, 1], None), Err(DropReason::Icc));
    assert_eq!(to(&n, [10, 1, 0, 1], PING), Ok(()));
    assert_eq!(to(&n, [192, 0, 2, 9], TCP80), Ok(()));
}

#[test]
fn the_other_network_lookup_is_skipped_when_the_answer_is_known() {
    let n = net(0);
    let asked = core::cell::Cell::new(false);
    let ask = || {
        asked.set(true);
        false
    };
    assert_eq!(
        check_ipv4_destination(&n, be([10, 1, 0, 3]), TCP80, ask),
        Ok(())
    );
    assert!(!asked.get());
}

#[test]
fn frames_must_carry_the_endpoint_mac() {
    let n = net(0);
    assert_eq!(check_frame(&ep(), &n, &MAC_A, &MAC_B, 0x88b5), Ok(()));
    assert_eq!(
        check_frame(&ep(), &n, &MAC_B, &GW_MAC, ETH_P_IP),
        Err(DropReason::SpoofedMac)
    );
}

#[test]
fn icc_off_frames_go_to_the_gateway_or_broadcast_for_arp_and_ipv4() {
    let n = net(NET_ICC_OFF);
    assert_eq!(check_frame(&ep(), &n, &MAC_A, &GW_MAC, ETH_P_IP), Ok(()));
    assert_eq!(check_frame(&ep(), &n, &MAC_A, &GW_MAC, 0x88b5), Ok(()));
    assert_eq!(
        check_frame(&ep(), &n, &MAC_A, &BROADCAST_MAC, ETH_P_ARP),
        Ok(())
    );
    assert_eq!(
        check_frame(&ep(), &n, &MAC_A, &MAC_B, ETH_P_IP),
        Err(DropReason::Icc),
        "IPv4 for the gateway's route but sent to a member's MAC"
    );
    assert_eq!(
        check_frame(&ep(), &n, &MAC_A, &BROADCAST_MAC, 0x88b5),
        Err(DropReason::Icc),
        "raw Ethernet broadcast"
    );
    let multicast = [0x33, 0x33, 0, 0, 0, 1];
    assert_eq!(
        check_frame(&ep(), &n, &MAC_A, &multicast, ETH_P_IPV6),
        Err(DropReason::Icc)
    );
}

#[test]
fn internal_network_frames_to_the_gateway_are_ipv4_or_arp() {
    let n = net(NET_INTERNAL);
    assert_eq!(check_frame(&ep(), &n, &MAC_A, &GW_MAC, ETH_P_ARP), Ok(()));
    assert_eq!(
        check_frame(&ep(), &n, &MAC_A, &GW_MAC, ETH_P_IPV6),
        Err(DropReason::Internal)
    );
    assert_eq!(check_frame(&ep(), &n, &MAC_A, &MAC_B, 0x88b5), Ok(()));
}

#[test]
fn arp_claims_only_the_senders_own_mac_and_address() {
    let n = net(0);
    let own = be([10, 1, 0, 2]);
    let other = be([10, 1, 0, 3]);
    assert_eq!(
        check_arp(&ep(), &n, &BROADCAST_MAC, &MAC_A, own, other),
        Ok(())
    );
    assert_eq!(
        check_arp(&ep(), &n, &BROADCAST_MAC, &MAC_A, 0, other),
        Ok(()),
        "probe"
    );
    assert_eq!(
        check_arp(&ep(), &n, &BROADCAST_MAC, &MAC_A, other, own),
        Err(DropReason::SpoofedArp)
    );
    assert_eq!(
        check_arp(&ep(), &n, &BROADCAST_MAC, &MAC_B, own, other),
        Err(DropReason::SpoofedArp)
    );
    let icc_off = net(NET_ICC_OFF);
    assert_eq!(
        check_arp(&ep(), &icc_off, &BROADCAST_MAC, &MAC_A, own, other),
        Err(DropReason::Icc)
    );
    assert_eq!(
        check_arp(
            &ep(),
            &icc_off,
            &BROADCAST_MAC,
            &MAC_A,
            own,
            be([10, 1, 0, 1])
        ),
        Ok(())
    );
    assert_eq!(
        check_arp(&ep(), &icc_off, &GW_MAC, &MAC_A, own, be([192, 0, 2, 1])),
        Ok(()),
        "a reply to the host, which asked with its uplink address"
    );
    assert_eq!(
        check_arp(&ep(), &icc_off, &MAC_B, &MAC_A, own, other),
        Err(DropReason::Icc)
    );
}

#[test]
fn source_address_must_be_the_endpoints() {
    assert_eq!(check_ipv4_source(&ep(), be([10, 1, 0, 2])), Ok(()));
    assert_eq!(
        check_ipv4_source(&ep(), be([10, 1, 0, 3])),
        Err(DropReason::SpoofedIp)
    );
}

#[test]
fn outside_reaches_container_addresses_only_on_routed_networks() {
    let container = be([10, 1, 0, 2]);
    assert_eq!(
        check_from_outside(&net(0), container),
        Err(DropReason::DirectAccess)
    );
    assert_eq!(check_from_outside(&net(NET_ROUTED), container), Ok(()));
    assert_eq!(
        check_from_outside(&net(NET_ROUTED | NET_INTERNAL), container),
        Err(DropReason::DirectAccess)
    );
    // The gateway's host services are the containers', whatever the mode.
    for flags in [0, NET_ROUTED] {
        assert_eq!(
            check_from_outside(&net(flags), be([10, 1, 0, 1])),
            Err(DropReason::DirectAccess)
        );
    }
}

#[test]
fn drop_reasons_round_trip_and_have_distinct_names() {
    for (i, r) in DropReason::ALL.iter().enumerate() {
        assert_eq!(DropReason::from_u8(*r as u8), Some(*r));
        for other in &DropReason::ALL[i + 1..] {
            assert_ne!(r.name(), other.name());
        }
    }
    assert_eq!(DropReason::from_u8(0), None);
}

#[test]
fn only_targets_of_published_ports_and_traffic_for_the_host_need_conntrack() {
    let n = net(0);
    let member = be([10, 1, 0, 3]);
    assert!(!may_be_translated(&ep(), &n, member));
    assert!(
        may_be_translated(&ep(), &n, be([10, 1, 0, 1])),
        "the gateway"
    );
    assert!(
        may_be_translated(&ep(), &n, be([192, 0, 2, 9])),
        "outside the subnet"
    );
    let target = Endpoint {
        flags: EP_DNAT_TARGET,
        ..ep()
    };
    assert!(
        may_be_translated(&target, &n, member),
        "a reply to a client on the network"
    );
}

fn member(port_ifindex: u32, network: u32, mac: [u8; 6]) -> Member {
    Member {
        port_ifindex,
        network,
        mac,
        _pad: [0; 2],
    }
}

#[test]
fn members_of_the_same_network_are_reached_directly_only_by_their_own_mac() {
    let from = 10;
    assert!(delivers_directly(
        &ep(),
        from,
        &member(11, 7, MAC_B),
        &MAC_B
    ));
    // A frame for another MAC (the gateway's, a stale one) is the bridge's to handle.
    assert!(!delivers_directly(
        &ep(),
        from,
        &member(11, 7, MAC_B),
        &GW_MAC
    ));
    assert!(!delivers_directly(
        &ep(),
        from,
        &member(11, 7, MAC_B),
        &BROADCAST_MAC
    ));
    // The address belongs to another network's member.
    assert!(!delivers_directly(
        &ep(),
        from,
        &member(11, 8, MAC_B),
        &MAC_B
    ));
    // The sender's own port.
    assert!(!delivers_directly(
        &ep(),
        from,
        &member(from, 7, MAC_A),
        &MAC_A
    ));
}
