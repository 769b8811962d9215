//! Redis `INFO commandstats`: fetching it over a raw RESP connection, parsing it, and the
//! difference between two snapshots (how many commands a stretch of work cost).
//!
//! Redis counts every command it executes, including those a Lua script runs with
//! `redis.call` (an `EVALSHA` that runs three commands counts as four).

use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One command's counters (`cmdstat_NAME:calls=…,usec=…,…`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CmdStat {
    pub calls: u64,
    /// Total microseconds Redis spent executing the command.
    pub usec: u64,
}

/// Per-command counters, keyed by the command's name without the `cmdstat_` prefix
/// (`get`, `evalsha`, `client|setname`).
pub type CommandStats = BTreeMap<String, CmdStat>;

/// Parses the text of `INFO commandstats`. Lines that are not `cmdstat_…` lines (the
/// `# Commandstats` header, blank lines) are skipped; so are fields other than `calls` and
/// `usec`. A `cmdstat_` line without a numeric `calls` field is an error.
pub fn parse_commandstats(text: &str) -> Result<CommandStats> {
    let mut out = CommandStats::new();
    for line in text.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("cmdstat_") else {
            continue;
        };
        let (name, fields) = rest
            .split_once(':')
            .with_context(|| format!("commandstats line without `:`: `{line}`"))?;
        let mut stat = CmdStat::default();
        let mut saw_calls = false;
        for field in fields.split(',') {
            let Some((k, v)) = field.split_once('=') else {
                continue;
            };
            match k {
                "calls" => {
                    stat.calls = v
                        .parse()
                        .with_context(|| format!("bad calls in `{line}`"))?;
                    saw_calls = true;
                }
                "usec" => {
                    stat.usec = v.parse().with_context(|| format!("bad usec in `{line}`"))?;
                }
                _ => {}
            }
        }
        if !saw_calls {
            bail!("commandstats line without calls: `{line}`");
        }
        out.insert(name.to_owned(), stat);
    }
    Ok(out)
}

/// `after − before` per command (commands with no new calls are left out). A counter that
/// went down (a `CONFIG RESETSTAT` in between) counts from zero.
pub fn delta(before: &CommandStats, after: &CommandStats) -> CommandStats {
    after
        .iter()
        .filter_map(|(name, a)| {
            let b = before.get(name).copied().unwrap_or_default();
            let d = if a.calls >= b.calls {
                CmdStat {
                    calls: a.calls - b.calls,
                    usec: a.usec.saturating_sub(b.usec),
                }
            } else {
                *a
            };
            (d.calls > 0).then(|| (name.clone(), d))
        })
        .collect()
}

/// The sum of `calls` over all commands.
pub fn total_calls(stats: &CommandStats) -> u64 {
    stats.values().map(|s| s.calls).sum()
}

/// The `n` commands with the most calls, most first (ties by name).
pub fn top(stats: &CommandStats, n: usize) -> Vec<(String, CmdStat)> {
    let mut v: Vec<(String, CmdStat)> = stats.iter().map(|(k, s)| (k.clone(), *s)).collect();
    v.sort_by(|a, b| b.1.calls.cmp(&a.1.calls).then_with(|| a.0.cmp(&b.0)));
    v.truncate(n);
    v
}

/// Sends one command (as a RESP array of bulk strings) to the Redis at `addr` and returns
/// its reply, which must be a bulk or simple string.
pub fn command(addr: &str, args: &[&str]) -> Result<String> {
    let stream = TcpStream::connect(addr).with_context(|| format!("connecting to redis {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    (&stream).write_all(req.as_bytes())?;
    let mut r = BufReader::new(&stream);
    let mut head = String::new();
    r.read_line(&mut head)?;
    let head = head.trim_end();
    match head.as_bytes().first() {
        Some(b'$') => {
            let len: i64 = head[1..]
                .parse()
                .with_context(|| format!("bad RESP length `{head}`"))?;
            if len < 0 {
                bail!("redis answered nil to {args:?}");
            }
            let mut buf = vec![0u8; len as usize + 2];
            r.read_exact(&mut buf)?;
            buf.truncate(len as usize);
            Ok(String::from_utf8_lossy(&buf).into_owned())
        }
        Some(b'+') => Ok(head[1..].to_owned()),
        Some(b'-') => bail!("redis answered an error to {args:?}: {}", &head[1..]),
        _ => bail!("unexpected RESP reply to {args:?}: `{head}`"),
    }
}

/// `used_memory` (bytes) from `INFO memory` of the Redis at `addr`.
pub fn used_memory(addr: &str) -> Result<u64> {
    let text = command(addr, &["INFO", "memory"])?;
    text.lines()
        .find_map(|l| l.trim().strip_prefix("used_memory:"))
        .and_then(|v| v.parse().ok())
        .context("no used_memory in INFO memory")
}

/// `total_reads_processed` from `INFO stats`: the read events Redis handled, one per batch
/// of requests a client sent at once (a command, a pipeline, a blocking read), so the
/// number of client round trips.
pub fn reads_processed(addr: &str) -> Result<u64> {
    let text = command(addr, &["INFO", "stats"])?;
    text.lines()
        .find_map(|l| l.trim().strip_prefix("total_reads_processed:"))
        .and_then(|v| v.parse().ok())
        .context("no total_reads_processed in INFO stats")
}

/// `INFO commandstats` from the Redis at `addr` (`host:port`), parsed.
pub fn commandstats(addr: &str) -> Result<CommandStats> {
    parse_commandstats(&command(addr, &["INFO", "commandstats"])?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "# Commandstats\r\n\
        cmdstat_get:calls=5,usec=12,usec_per_call=2.40,rejected_calls=0,failed_calls=0\r\n\
        cmdstat_evalsha:calls=1200,usec=9000,usec_per_call=7.50,rejected_calls=0,failed_calls=1\r\n\
        cmdstat_client|setname:calls=3,usec=1,usec_per_call=0.33,rejected_calls=0,failed_calls=0\r\n\
        \r\n";

    #[test]
    fn commandstats_text_parses() {
        let s = parse_commandstats(SAMPLE).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s["get"], CmdStat { calls: 5, usec: 12 });
        assert_eq!(
            s["evalsha"],
            CmdStat {
                calls: 1200,
                usec: 9000
            }
        );
        assert_eq!(s["client|setname"].calls, 3);
        assert_eq!(total_calls(&s), 1208);
        assert!(parse_commandstats("# Commandstats\n").unwrap().is_empty());
        assert!(parse_commandstats("cmdstat_get:usec=3").is_err());
        assert!(parse_commandstats("cmdstat_get:calls=x,usec=3").is_err());
        assert!(parse_commandstats("cmdstat_get").is_err());
    }

    #[test]
    fn deltas_and_top() {
        let before = parse_commandstats(SAMPLE).unwrap();
        let after = parse_commandstats(
            "cmdstat_get:calls=9,usec=20\n\
             cmdstat_evalsha:calls=1200,usec=9000\n\
             cmdstat_client|setname:calls=3,usec=1\n\
             cmdstat_xadd:calls=40,usec=80\n\
             cmdstat_hmget:calls=4,usec=4\n",
        )
        .unwrap();
        let d = delta(&before, &after);
        assert_eq!(d.len(), 3, "{d:?}");
        assert_eq!(d["get"], CmdStat { calls: 4, usec: 8 });
        assert_eq!(d["xadd"].calls, 40);
        assert_eq!(total_calls(&d), 48);
        let t = top(&d, 2);
        assert_eq!(
            t.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            ["xadd", "get"]
        );
        // A reset counter counts from zero.
        let reset = parse_commandstats("cmdstat_get:calls=2,usec=1").unwrap();
        assert_eq!(delta(&before, &reset)["get"].calls, 2);
    }

    #[test]
    fn resp_round_trip_against_a_fake_server() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0u8; 256];
            let n = s.read(&mut buf).unwrap();
            let req = String::from_utf8_lossy(&buf[..n]).into_owned();
            let body = "# Commandstats\r\ncmdstat_get:calls=5,usec=12\r\n";
            write!(s, "${}\r\n{body}\r\n", body.len()).unwrap();
            req
        });
        let stats = commandstats(&addr).unwrap();
        assert_eq!(stats["get"].calls, 5);
        assert_eq!(
            server.join().unwrap(),
            "*2\r\n$4\r\nINFO\r\n$12\r\ncommandstats\r\n"
        );
    }
}
