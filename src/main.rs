//! pop3d's entry point: command-line options, configuration, logging, then inetd mode (-i) or the daemon.

// `unsafe` is allowed in `sys` only (see there).
#![deny(unsafe_code)]

// The modules are the library's (src/lib.rs), which the fuzz targets use too.
use pop3d::{config, daemon, handover, inetd, limits, lock, logging, perms, sys, tls, users};

use std::path::PathBuf;
use std::process::ExitCode;

use config::{Config, LogTarget, Raw};

const USAGE: &str = "Usage: pop3d [-f FILE] [-i [-s]] [-t] [-V] [-l ADDR]... [-o KEY=VALUE]...";

/// What the command line asked for.
struct Options {
    config_file: Option<PathBuf>,
    inetd: bool,
    inetd_tls: bool,
    check: bool,
    listen: Vec<String>,
    overrides: Vec<String>,
}

fn main() -> ExitCode {
    sys::return_large_blocks(limits::MALLOC_MMAP_THRESHOLD);
    let mut opts = getopts::Options::new();
    opts.optopt("f", "", "configuration file (key = value lines)", "FILE");
    opts.optflag("i", "", "serve one session on stdin/stdout (inetd, xinetd, tcpserver, systemd Accept=yes)");
    opts.optflag("s", "", "with -i: implicit TLS (port 995): handshake before the greeting");
    opts.optflag("t", "", "check the configuration and exit");
    opts.optflag("V", "", "print the version and exit");
    opts.optflag("h", "", "print this help and exit");
    opts.optopt(
        "P",
        "",
        "print a users-file line for NAME with SCRAM-SHA-256 keys of the password read from stdin",
        "NAME",
    );
    opts.optmulti("l", "", "listen on ADDR (replaces `listen`; repeatable)", "ADDR");
    opts.optmulti("o", "", "set configuration KEY to VALUE (repeatable)", "KEY=VALUE");
    let m = match opts.parse(std::env::args().skip(1)) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("pop3d: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if m.opt_present("h") {
        print!("{}", opts.usage(USAGE));
        return ExitCode::SUCCESS;
    }
    if m.opt_present("V") {
        println!("pop3d {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    if let Some(name) = m.opt_str("P") {
        return match users::scram_line(&name, std::io::stdin().lock()) {
            Ok(line) => {
                println!("{line}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("pop3d: {e}");
                ExitCode::from(1)
            }
        };
    }
    let options = Options {
        config_file: m.opt_str("f").map(PathBuf::from),
        inetd: m.opt_present("i"),
        inetd_tls: m.opt_present("s"),
        check: m.opt_present("t"),
        listen: m.opt_strs("l"),
        overrides: m.opt_strs("o"),
    };
    match run(options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => ExitCode::from(e),
    }
}

/// What the file (if any) and the command-line overrides say.
fn read(options: &Options) -> Result<Raw, String> {
    let mut raw = match &options.config_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            Raw::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => Raw::default(),
    };
    for kv in &options.overrides {
        let (k, v) = kv.split_once('=').ok_or_else(|| format!("-o {kv}: expected KEY=VALUE"))?;
        raw.set(k.trim(), v.trim()).map_err(|e| format!("-o {kv}: {e}"))?;
    }
    if !options.listen.is_empty() {
        raw.set("listen", &options.listen.join(","))?;
    }
    Ok(raw)
}

/// The configuration, finished and checked against the disk (at start and on SIGHUP).
fn load(options: &Options) -> Result<Config, String> {
    let config = read(options)?.finish(options.inetd)?;
    config.check_files()?;
    if options.check || !options.inetd {
        config.check_hash_schemes()?;
    }
    perms::check(&config, options.config_file.as_deref(), options.inetd)?;
    if options.inetd_tls && config.tls.is_none() {
        return Err("-s needs `tls_cert` and `tls_key`".into());
    }
    if options.check {
        if let Some(files) = &config.tls {
            tls::Tls::load(files.clone())?;
        }
    }
    if sys::is_root() && config.user.is_none() {
        return Err("started as root: set `user` to the account sessions run as".into());
    }
    Ok(config)
}

/// Runs the chosen mode; the error is the exit code, after it was reported.
fn run(options: Options) -> Result<(), u8> {
    let config = match load(&options) {
        Ok(c) => c,
        Err(e) => {
            report_early(&options, &e);
            return Err(1);
        }
    };
    if options.check {
        for w in config.warnings() {
            eprintln!("pop3d: warning: {w}");
        }
        println!("pop3d: configuration OK");
        return Ok(());
    }
    if let Err(e) = logging::init(&config.log, config.log_level) {
        report_early(&options, &e);
        return Err(1);
    }
    for w in config.warnings() {
        log::warn!("{w}");
    }
    // Built with panic = "abort" (`make release`) a panic ends the process,
    // and no Drop runs: the dotlocks it holds are removed here.
    std::panic::set_hook(Box::new(|info| {
        if cfg!(panic = "abort") {
            log::error!("internal error (pop3d stops): {info}");
            lock::remove_held_dotlocks();
        } else {
            log::error!("internal error (session ended): {info}");
        }
    }));
    if options.inetd {
        return serve_inetd(&config, options.inetd_tls).map_err(|e| {
            log::error!("{e}");
            1
        });
    }
    let reload = move || load(&options);
    daemon::run(config, reload).map_err(|e| {
        log::error!("{e}");
        eprintln!("pop3d: {e}");
        1
    })
}

/// inetd mode: one session on stdin/stdout. With system accounts the
/// process splits first (see `handover`).
fn serve_inetd(config: &Config, implicit_tls: bool) -> Result<(), String> {
    if config.accounts == config::AccountSource::System {
        return handover::serve(config, implicit_tls);
    }
    let tls = config.tls.clone().map(tls::Tls::load).transpose()?;
    if sys::is_root() {
        sys::drop_privileges(config.user.as_deref().unwrap_or(""))?;
    }
    inetd::serve(config, tls.as_ref(), implicit_tls, None)
}

/// Reports an error from before logging was set up: on stderr, except in
/// inetd mode, where stderr may be the client's socket and syslog is used.
/// The configured `log`, when the file and overrides parse, else syslog.
fn report_early(options: &Options, e: &str) {
    if options.inetd && !options.check {
        if logging::init(&configured_log(options), log::LevelFilter::Error).is_ok() {
            log::error!("{e}");
        }
    } else {
        eprintln!("pop3d: {e}");
    }
}

/// Where the configuration says to log, as far as it can be read (an error
/// found after reading, such as a state_dir with the wrong owner, goes
/// where the operator looks); syslog otherwise.
fn configured_log(options: &Options) -> LogTarget {
    let text = options.config_file.as_ref().map_or(Ok(String::new()), std::fs::read_to_string);
    let Ok(mut raw) = text.map_err(|e| e.to_string()).and_then(|t| Raw::parse(&t)) else {
        return LogTarget::Syslog;
    };
    for (k, v) in options.overrides.iter().filter_map(|kv| kv.split_once('=')) {
        let _ = raw.set(k.trim(), v.trim());
    }
    match raw.log {
        LogTarget::Stderr => LogTarget::Syslog,
        target => target,
    }
}
