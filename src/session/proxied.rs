//! A session behind a load balancer: the PROXY header (src/proxy.rs) read from a trusted proxy, refused from others.

use std::io;

use super::{End, Session};
use crate::conn::Conn;
use crate::proxy;
use crate::reply::Code;
use crate::transport::Transport;

impl<T: Transport> Session<'_, T> {
    /// From a trusted proxy, reads its PROXY header before anything else
    /// and takes the client address from it. Some(end) when the session
    /// ends here (a malformed header: closed without a word).
    pub(super) fn proxy_header(&mut self) -> io::Result<Option<End>> {
        let Some(via) = self.link.peer.filter(|p| self.config.proxy_trusted.contains(p.ip())) else {
            return Ok(None);
        };
        let Conn::Plain(io) = self.out.get_mut() else { return Ok(None) };
        match proxy::read_header(io) {
            Ok(Some(client)) => {
                self.peer = Some(client);
                if let Some(watch) = self.mode.watch() {
                    if !watch.client(client.ip(), self.config) {
                        log::info!("too many sessions from {} (via {via}): refused", client.ip());
                        self.out.farewell(Some(Code::SysTemp), "too many sessions, try again later")?;
                        self.out.flush()?;
                        let _ = self.out.get_mut().close();
                        return Ok(Some(End::TooManySessions));
                    }
                }
            }
            Ok(None) => {}
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                log::warn!("{e} from trusted proxy {via}: closing");
                let _ = self.out.get_mut().close();
                return Ok(Some(End::BadProxyHeader));
            }
            Err(e) => return Err(e),
        }
        Ok(None)
    }

    /// A PROXY header from an address that is not trusted: someone trying
    /// to pass for another address. Closed with a log line.
    pub(super) fn untrusted_proxy_header(&mut self, input: &[u8]) -> Option<End> {
        let from = self.link.peer?;
        if self.config.proxy_trusted.contains(from.ip()) || !proxy::looks_like_header(input) {
            return None;
        }
        log::warn!("PROXY header from {from}, which is not in proxy_trusted: closing");
        let _ = self.out.get_mut().close();
        Some(End::BadProxyHeader)
    }
}
