//! A session's connection: plaintext, or TLS through rustls::StreamOwned after STLS or on an implicit-TLS port.

use std::io::{self, Read, Write};
use std::time::Duration;

use rustls::{ServerConnection, StreamOwned};

use crate::tls::Tls;
use crate::transport::Transport;

/// RFC 9266: the label of the tls-exporter channel binding.
const EXPORTER_LABEL: &[u8] = b"EXPORTER-Channel-Binding";

/// Plaintext or TLS over the same transport; `Gone` only while switching.
pub enum Conn<T: Transport> {
    Plain(T),
    Tls(Box<StreamOwned<ServerConnection, T>>),
    Gone,
}

impl<T: Transport> Conn<T> {
    /// Wraps the plaintext transport in TLS and completes the handshake
    /// (bounded by the transport's timeout). The caller must have thrown
    /// away every plaintext byte it read beyond the STLS line. A failed
    /// handshake's error says why in words (`Tls::explain`).
    pub fn start_tls(&mut self, tls: &Tls) -> io::Result<()> {
        let Conn::Plain(sock) = std::mem::replace(self, Conn::Gone) else {
            return Err(io::Error::other("TLS already active"));
        };
        let conn = ServerConnection::new(tls.config()).map_err(io::Error::other)?;
        let mut stream = StreamOwned::new(conn, sock);
        let mut hello = Vec::new();
        while stream.conn.is_handshaking() {
            let mut recording = Recording { sock: &mut stream.sock, first: &mut hello };
            if let Err(e) = stream.conn.complete_io(&mut recording) {
                let Some(why) = e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) else { return Err(e) };
                return Err(io::Error::new(e.kind(), tls.explain(why, &hello, stream.conn.server_name())));
            }
        }
        *self = Conn::Tls(Box::new(stream));
        Ok(())
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, Conn::Tls(_))
    }

    /// "TLSv1_3 TLS13_AES_256_GCM_SHA384" for the session log, or "-".
    pub fn tls_summary(&self) -> String {
        match self {
            Conn::Tls(s) => {
                let version = s.conn.protocol_version().map_or("?".into(), |v| format!("{v:?}"));
                let suite = s.conn.negotiated_cipher_suite().map_or("?".into(), |c| format!("{:?}", c.suite()));
                format!("{version}/{suite}")
            }
            _ => "no".into(),
        }
    }

    /// tls-exporter channel binding data (RFC 9266), offered on TLS 1.3 only.
    pub fn channel_binding(&self) -> Option<[u8; 32]> {
        let Conn::Tls(s) = self else { return None };
        if s.conn.protocol_version() != Some(rustls::ProtocolVersion::TLSv1_3) {
            return None;
        }
        s.conn.export_keying_material([0u8; 32], EXPORTER_LABEL, None).ok()
    }

    /// The user a verified client certificate maps to (see tls::certificate_user).
    pub fn certificate_user(&self) -> Option<String> {
        let Conn::Tls(s) = self else { return None };
        s.conn.peer_certificates()?.first().and_then(crate::tls::certificate_user)
    }

    /// Sends TLS close_notify (RFC 8314 / the seed draft, section 2.3) before
    /// the TCP connection is closed.
    pub fn close(&mut self) -> io::Result<()> {
        if let Conn::Tls(s) = self {
            s.conn.send_close_notify();
            while s.conn.wants_write() {
                s.conn.write_tls(&mut s.sock)?;
            }
            s.sock.flush()?;
        }
        Ok(())
    }
}

/// How many of the client's first bytes a handshake keeps: a ClientHello's
/// record and handshake headers and its version.
const HELLO_PEEK: usize = 16;

/// The transport during a handshake, keeping the client's first bytes.
struct Recording<'a, T> {
    sock: &'a mut T,
    first: &'a mut Vec<u8>,
}

impl<T: Read> Read for Recording<'_, T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.sock.read(buf)?;
        let room = HELLO_PEEK.saturating_sub(self.first.len());
        self.first.extend_from_slice(&buf[..n.min(room)]);
        Ok(n)
    }
}

impl<T: Write> Write for Recording<'_, T> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sock.write(buf)
    }

    /// The transport's own: rustls writes its queue (a refusal's alert
    /// included) in one vectored write, which the default would cut short.
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.sock.write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.sock.flush()
    }
}

/// The connection as the relay sees it after a hand-over (inetd mode with
/// system accounts): bytes both ways, and whether TLS holds decrypted bytes
/// not read yet (no poll would wake for those).
pub trait Relayed: Transport {
    fn buffered(&mut self) -> bool;
}

impl<T: Transport> Relayed for Conn<T> {
    /// TLS records already read may hold more plaintext than the last read took.
    fn buffered(&mut self) -> bool {
        match self {
            Conn::Tls(s) => s.conn.process_new_packets().is_ok_and(|st| st.plaintext_bytes_to_read() > 0),
            _ => false,
        }
    }
}

impl<T: Transport> Read for Conn<T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
            Conn::Gone => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

impl<T: Transport> Write for Conn<T> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
            Conn::Gone => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
            Conn::Gone => Ok(()),
        }
    }
}

impl<T: Transport> Transport for Conn<T> {
    fn set_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.set_timeout(timeout),
            Conn::Tls(s) => s.sock.set_timeout(timeout),
            Conn::Gone => Ok(()),
        }
    }
}
