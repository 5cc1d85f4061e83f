//! CNI's front door: the `netd-cni` plugin a runtime execs. It reads the spec's environment
//! and the network configuration, asks the daemon over its socket, and answers the spec's
//! result or error on stdout.

mod commands;
pub mod wire;

use std::io::Read;

use wire::{CniError, Code, NetConf, SUPPORTED_VERSIONS};

/// What the runtime said, from the environment.
#[derive(Debug, Default)]
pub struct Env {
    pub command: String,
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
    pub args: std::collections::BTreeMap<String, String>,
}

impl Env {
    fn from_process() -> Self {
        let var = |k: &str| std::env::var(k).unwrap_or_default();
        Self {
            command: var("CNI_COMMAND"),
            container_id: var("CNI_CONTAINERID"),
            netns: var("CNI_NETNS"),
            ifname: var("CNI_IFNAME"),
            args: wire::cni_args(&var("CNI_ARGS")),
        }
    }

    /// A variable the command needs.
    pub fn required<'a>(&self, name: &str, value: &'a str) -> Result<&'a str, CniError> {
        if value.is_empty() {
            return Err(CniError::new(
                Code::InvalidEnvironment,
                format!("{name} is missing; {} needs it", self.command),
            ));
        }
        Ok(value)
    }
}

/// Runs the plugin; returns its exit code. Whatever happens, the runtime gets a CNI answer:
/// a panic (a bug) becomes an error result, not exit 101 with nothing on stdout.
pub fn main() -> i32 {
    let env = Env::from_process();
    let mut stdin = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut stdin);
    let (version, outcome) = std::panic::catch_unwind(|| run(&env, &stdin)).unwrap_or_else(|_| {
        let err = CniError::new(Code::Io, "netd-cni failed inside (a bug: see its stderr)");
        ("1.1.0".into(), Err(err))
    });
    match outcome {
        Ok(Some(result)) => {
            println!("{result}");
            0
        }
        Ok(None) => 0,
        Err(e) => {
            println!("{}", e.to_json(&version));
            1
        }
    }
}

/// Reads the network configuration as every command does; an error comes with the version
/// to answer in.
fn read_conf(stdin: &[u8]) -> Result<NetConf, CniError> {
    let conf: NetConf = serde_json::from_slice(stdin).map_err(|e| {
        CniError::new(
            Code::Decode,
            format!("the network configuration is not valid JSON: {e}"),
        )
    })?;
    if !SUPPORTED_VERSIONS.contains(&conf.cni_version.as_str()) {
        return Err(CniError::new(
            Code::IncompatibleVersion,
            format!(
                "cniVersion {:?} is not supported; netd-cni supports {}",
                conf.cni_version,
                SUPPORTED_VERSIONS.join(", ")
            ),
        ));
    }
    Ok(conf)
}

/// What netd-cni checks of a call before it asks the daemon (the configuration, CNI_ARGS,
/// runtimeConfig), alone: the fuzz targets drive it with any input.
pub fn check(args: &str, stdin: &[u8]) -> Result<(), CniError> {
    let conf = read_conf(stdin)?;
    let env = Env {
        args: wire::cni_args(args),
        ..Env::default()
    };
    let plan = commands::plan(&env, &conf)?;
    for spec in &plan.publish {
        crate::config::port::parse_publish(spec)
            .map_err(|e| CniError::new(Code::InvalidConfig, e.to_string()))?;
    }
    Ok(())
}

/// The command's result (if it prints one), with the version to answer in.
fn run(env: &Env, stdin: &[u8]) -> (String, Result<Option<serde_json::Value>, CniError>) {
    if env.command == "VERSION" {
        let versions =
            serde_json::json!({"cniVersion": "1.1.0", "supportedVersions": SUPPORTED_VERSIONS});
        return ("1.1.0".into(), Ok(Some(versions)));
    }
    let conf = match read_conf(stdin) {
        Ok(conf) => conf,
        Err(e) => return ("1.1.0".into(), Err(e)),
    };
    let version = conf.cni_version.clone();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            return (
                version,
                Err(CniError::new(Code::Io, format!("starting: {e}"))),
            )
        }
    };
    let outcome = runtime.block_on(commands::run(env, &conf));
    (version, outcome)
}
