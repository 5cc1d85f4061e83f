//! The loaded programs, pinned under `<bpffs>/programs/<build>/` so that a restart of the
//! same build takes them from there instead of through the verifier again (150-250 ms of a
//! restart here), and finds them already running in every filter and socket hook.
//!
//! A pinned program keeps the maps it was loaded with. It is reused only if every map it
//! uses is the one pinned now: after a map was made anew (a layout change, a conntrack table
//! of another size, a pin removed by hand), the programs are loaded again.

use std::{
    collections::HashSet,
    fs,
    path::{Path, PathBuf},
};

use aya::{
    maps::MapInfo,
    programs::{CgroupSockAddr, CgroupSockAddrAttachType, Program, ProgramError, SchedClassifier},
    Ebpf,
};
use netd_common::maps;

use super::DatapathError;

/// The programs and how a pinned one is opened again.
const PROGRAMS: [(&str, Kind); 10] = [
    (maps::PROG_PORT_INGRESS, Kind::Classifier),
    (maps::PROG_PORT_EGRESS, Kind::Classifier),
    (maps::PROG_LAN_EGRESS, Kind::Classifier),
    (maps::PROG_LAN_INGRESS, Kind::Classifier),
    (maps::PROG_UPLINK_INGRESS, Kind::Classifier),
    (maps::PROG_UPLINK_EGRESS, Kind::Classifier),
    (
        maps::PROG_CONNECT4,
        Kind::Sock(CgroupSockAddrAttachType::Connect4),
    ),
    (
        maps::PROG_SENDMSG4,
        Kind::Sock(CgroupSockAddrAttachType::UDPSendMsg4),
    ),
    (
        maps::PROG_RECVMSG4,
        Kind::Sock(CgroupSockAddrAttachType::UDPRecvMsg4),
    ),
    (
        maps::PROG_GETPEERNAME4,
        Kind::Sock(CgroupSockAddrAttachType::GetPeerName4),
    ),
];

#[derive(Clone, Copy)]
enum Kind {
    Classifier,
    Sock(CgroupSockAddrAttachType),
}

/// Loads the object's programs, or takes this build's pinned ones when they still serve.
/// Returns whether they were reused.
pub(super) fn load_or_reuse(
    ebpf: &mut Ebpf,
    bpffs: &Path,
    object: &[u8],
) -> Result<bool, DatapathError> {
    let root = bpffs.join("programs");
    let build = build_id(object);
    let dir = root.join(&build);
    if dir.exists() {
        match pinned(ebpf, &dir, &bpffs.join("maps")) {
            Ok(programs) => {
                for (name, program) in programs {
                    if let Some(slot) = ebpf.program_mut(name) {
                        *slot = program;
                    }
                }
                return Ok(true);
            }
            Err(why) => log::info!("loading the programs again: the pinned ones {why}"),
        }
    }
    // Other builds' programs, or ones on maps since made anew: nothing will reuse them. The
    // filters and hooks running them hold their own references.
    if root.exists() {
        fs::remove_dir_all(&root).map_err(bpffs_err("remove", &root))?;
    }
    for (name, _) in PROGRAMS {
        let program = ebpf.program_mut(name).ok_or(DatapathError::Program {
            name,
            source: ProgramError::UnexpectedProgramType,
        })?;
        let loaded = match program {
            Program::SchedClassifier(p) => p.load(),
            Program::CgroupSockAddr(p) => p.load(),
            _ => Err(ProgramError::UnexpectedProgramType),
        };
        loaded.map_err(|source| DatapathError::Program { name, source })?;
    }
    // Pinned under a temporary name and renamed, so that a crash never leaves a set that
    // lacks a program under the build's name (bpffs refuses a '.' in a name).
    let partial = root.join(format!("partial-{build}"));
    fs::create_dir_all(&partial).map_err(bpffs_err("create", &partial))?;
    for (name, _) in PROGRAMS {
        if let Some(program) = ebpf.program_mut(name) {
            program
                .pin(partial.join(name))
                .map_err(|e| DatapathError::Object(format!("pinning program {name}: {e}")))?;
        }
    }
    fs::rename(&partial, &dir).map_err(bpffs_err("rename", &partial))?;
    Ok(false)
}

/// This build's pinned programs, if each is there and uses only maps pinned now.
fn pinned(
    ebpf: &Ebpf,
    dir: &Path,
    maps_dir: &Path,
) -> Result<Vec<(&'static str, Program)>, String> {
    let current: HashSet<u32> = ebpf
        .maps()
        .filter_map(|(name, _)| MapInfo::from_pin(maps_dir.join(name)).ok())
        .map(|info| info.id())
        .collect();
    let mut programs = Vec::new();
    for (name, kind) in PROGRAMS {
        let pin = dir.join(name);
        let program = match kind {
            Kind::Classifier => SchedClassifier::from_pin(&pin).map(Program::SchedClassifier),
            Kind::Sock(attach) => {
                CgroupSockAddr::from_pin(&pin, attach).map(Program::CgroupSockAddr)
            }
        }
        .map_err(|e| format!("cannot be opened ({name}: {e})"))?;
        let uses = program
            .info()
            .and_then(|info| info.map_ids())
            .map_err(|e| format!("cannot be read ({name}: {e})"))?
            .ok_or_else(|| format!("do not say which maps they use ({name})"))?;
        if let Some(id) = uses.iter().find(|id| !current.contains(id)) {
            return Err(format!("use map {id}, which is no longer pinned ({name})"));
        }
        programs.push((name, program));
    }
    Ok(programs)
}

/// Names a build by its object's bytes.
fn build_id(object: &[u8]) -> String {
    format!("{:016x}", fnv1a(object))
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn bpffs_err(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> DatapathError {
    let path: PathBuf = path.to_path_buf();
    move |source| DatapathError::Bpffs { op, path, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_differing_in_one_byte_have_other_ids() {
        let a = fnv1a(b"netd object one");
        let b = fnv1a(b"netd object onf");
        assert_ne!(a, b);
        assert_eq!(a, fnv1a(b"netd object one"));
    }
}
