//! MQTT 3.1.1 and 5 framing on top of rumqttd's `protocol` codecs, made safe for input from
//! the network.
//!
//! rumqttd's readers trust more than a listener may: some server-to-client packet types sent
//! by a client make the v5 reader panic, publish QoS and packet id are not public, and the
//! v3 writer panics on v5 properties. This wrapper peeks at the fixed header first, refuses
//! what a client must not send, reads QoS and packet id from the raw frame, and strips
//! properties before writing to a 3.1.1 client.

use bytes::{Buf, BytesMut};
use rumqttd::protocol::{self, v4, v5, Packet, Protocol};

/// The protocol version a connection speaks, chosen from its CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V311,
    V5,
}

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("packet of {0} bytes is larger than the maximum packet size")]
    TooLarge(usize),
    #[error("a client may not send packet type {0}")]
    ForbiddenType(u8),
    #[error("the first packet must be CONNECT")]
    NotConnect,
    #[error("unsupported MQTT protocol level {0} (3.1.1 and 5 are served)")]
    UnsupportedLevel(u8),
    #[error("packet type {kind} with reserved fixed-header flags {flags:#06b} (MQTT 5 §2.1.3, 3.1.1 §2.2.2: malformed)")]
    BadFlags { kind: u8, flags: u8 },
    #[error("malformed packet: {0:?}")]
    Malformed(protocol::Error),
}

/// What the frame said before parsing: a publish's QoS, retain flag and packet id.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublishHeader {
    pub qos: u8,
    pub pkid: u16,
}

/// A read packet and, for a PUBLISH, its header fields.
pub struct Frame {
    pub packet: Packet,
    pub publish: Option<PublishHeader>,
}

/// Checks whether `buf` holds a whole frame; `Ok(None)` when more bytes are needed.
fn peek(buf: &BytesMut, max: usize) -> Result<Option<v4::FixedHeader>, CodecError> {
    match v4::check(buf.iter(), max) {
        Ok(header) => Ok(Some(header)),
        Err(protocol::Error::InsufficientBytes(_)) => Ok(None),
        Err(protocol::Error::PayloadSizeLimitExceeded(n)) => Err(CodecError::TooLarge(n)),
        Err(e) => Err(CodecError::Malformed(e)),
    }
}

/// Reads the CONNECT that opens a connection and tells its version.
pub fn read_connect(
    buf: &mut BytesMut,
    max: usize,
) -> Result<Option<(Version, Packet)>, CodecError> {
    let Some(header) = peek(buf, max)? else {
        return Ok(None);
    };
    if header.byte1 >> 4 != 1 {
        return Err(CodecError::NotConnect);
    }
    // Variable header: protocol name (2-byte length + "MQTT"), then the level.
    let level_at = header.fixed_header_len + 6;
    let level = *buf
        .get(level_at)
        .ok_or(CodecError::Malformed(protocol::Error::MalformedPacket))?;
    let version = match level {
        4 => Version::V311,
        5 => Version::V5,
        other => {
            // Skip the frame so the caller can answer and close.
            buf.advance(header.fixed_header_len + header.remaining_len);
            return Err(CodecError::UnsupportedLevel(other));
        }
    };
    let packet = Codec::new(version).read_checked(buf, max, header)?;
    Ok(Some((version, packet.packet)))
}

/// Reader and writer for one connection's version.
pub struct Codec {
    version: Version,
}

impl Codec {
    pub fn new(version: Version) -> Codec {
        Codec { version }
    }

    pub fn version(&self) -> Version {
        self.version
    }

    /// Reads the next whole frame, if `buf` holds one.
    pub fn read(&self, buf: &mut BytesMut, max: usize) -> Result<Option<Frame>, CodecError> {
        match peek(buf, max)? {
            Some(header) => self.read_checked(buf, max, header).map(Some),
            None => Ok(None),
        }
    }

    fn read_checked(
        &self,
        buf: &mut BytesMut,
        max: usize,
        header: v4::FixedHeader,
    ) -> Result<Frame, CodecError> {
        let kind = header.byte1 >> 4;
        // Packets only a server sends (CONNACK, SUBACK, UNSUBACK, PINGRESP), and 0/15.
        if matches!(kind, 0 | 2 | 9 | 11 | 13) || (kind == 15 && self.version == Version::V311) {
            return Err(CodecError::ForbiddenType(kind));
        }
        // MQTT 5 §2.1.3 [MQTT-2.1.3-1], 3.1.1 §2.2.2 [MQTT-2.2.2-1/2]: the flags of every
        // type but PUBLISH are fixed (0010 for PUBREL, SUBSCRIBE, UNSUBSCRIBE, else 0000);
        // other flags make the packet malformed and the connection closes.
        let flags = header.byte1 & 0x0F;
        let expected = match kind {
            3 => flags,
            6 | 8 | 10 => 0b0010,
            _ => 0,
        };
        if flags != expected {
            return Err(CodecError::BadFlags { kind, flags });
        }
        let publish = if kind == 3 {
            let qos = (header.byte1 >> 1) & 0b11;
            if qos == 3 {
                return Err(CodecError::Malformed(protocol::Error::InvalidQoS(3)));
            }
            let start = header.fixed_header_len;
            let frame = &buf[..header.fixed_header_len + header.remaining_len];
            let topic_len = frame
                .get(start..start + 2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
                .ok_or(CodecError::Malformed(protocol::Error::MalformedPacket))?;
            let pkid = if qos > 0 {
                let at = start + 2 + topic_len;
                frame
                    .get(at..at + 2)
                    .map(|b| u16::from_be_bytes([b[0], b[1]]))
                    .ok_or(CodecError::Malformed(protocol::Error::MalformedPacket))?
            } else {
                0
            };
            if qos > 0 && pkid == 0 {
                return Err(CodecError::Malformed(protocol::Error::PacketIdZero));
            }
            Some(PublishHeader { qos, pkid })
        } else {
            None
        };
        let packet = match self.version {
            Version::V311 => v4::V4.read_mut(buf, max),
            Version::V5 => v5::V5.read_mut(buf, max),
        }
        .map_err(CodecError::Malformed)?;
        Ok(Frame { packet, publish })
    }

    /// Appends `packet` to `out`. Properties are dropped for a 3.1.1 client.
    pub fn write(&self, packet: Packet, out: &mut BytesMut) -> Result<(), CodecError> {
        match self.version {
            Version::V311 => v4::V4.write(strip_properties(packet), out),
            Version::V5 => v5::V5.write(packet, out),
        }
        .map(|_| ())
        .map_err(CodecError::Malformed)
    }
}

fn strip_properties(packet: Packet) -> Packet {
    match packet {
        Packet::Connect(c, _, w, _, l) => Packet::Connect(c, None, w, None, l),
        Packet::ConnAck(a, _) => Packet::ConnAck(a, None),
        Packet::Publish(p, _) => Packet::Publish(p, None),
        Packet::PubAck(a, _) => Packet::PubAck(a, None),
        Packet::Subscribe(s, _) => Packet::Subscribe(s, None),
        Packet::SubAck(a, _) => Packet::SubAck(a, None),
        Packet::PubRec(a, _) => Packet::PubRec(a, None),
        Packet::PubRel(a, _) => Packet::PubRel(a, None),
        Packet::PubComp(a, _) => Packet::PubComp(a, None),
        Packet::Unsubscribe(u, _) => Packet::Unsubscribe(u, None),
        Packet::UnsubAck(a, _) => Packet::UnsubAck(a, None),
        Packet::Disconnect(d, _) => Packet::Disconnect(d, None),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_server_packets_and_huge_lengths() {
        let codec = Codec::new(Version::V5);
        // CONNACK from a client: refused before rumqttd's reader sees it.
        let mut buf = BytesMut::from(&[0x20u8, 0x03, 0x00, 0x00, 0x00][..]);
        assert!(matches!(
            codec.read(&mut buf, 1024),
            Err(CodecError::ForbiddenType(2))
        ));
        // A fixed header announcing ~100 MB.
        let mut buf = BytesMut::from(&[0x30u8, 0xff, 0xff, 0xff, 0x2f][..]);
        assert!(matches!(
            codec.read(&mut buf, 1 << 20),
            Err(CodecError::TooLarge(_))
        ));
        // Not enough bytes yet.
        let mut buf = BytesMut::from(&[0x30u8, 0x10, 0x00][..]);
        assert!(codec.read(&mut buf, 1024).unwrap().is_none());
    }

    #[test]
    fn reserved_flags_are_malformed() {
        for version in [Version::V311, Version::V5] {
            let codec = Codec::new(version);
            // PUBREL pkid 1 with flags 0000 (must be 0010).
            let mut buf = BytesMut::from(&[0x60u8, 0x02, 0x00, 0x01][..]);
            assert!(matches!(
                codec.read(&mut buf, 1024),
                Err(CodecError::BadFlags { kind: 6, flags: 0 })
            ));
            // The right flags are read.
            let mut buf = BytesMut::from(&[0x62u8, 0x02, 0x00, 0x01][..]);
            assert!(matches!(
                codec.read(&mut buf, 1024).unwrap().unwrap().packet,
                Packet::PubRel(..)
            ));
            // PINGREQ with a flag set.
            let mut buf = BytesMut::from(&[0xC1u8, 0x00][..]);
            assert!(codec.read(&mut buf, 1024).is_err());
        }
    }

    #[test]
    fn reads_publish_qos_and_packet_id() {
        // PUBLISH QoS1, topic "a/b", pkid 7, payload "hi" (v3.1.1)
        let mut buf = BytesMut::from(
            &[
                0x32u8, 0x09, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x07, b'h', b'i',
            ][..],
        );
        let frame = Codec::new(Version::V311)
            .read(&mut buf, 1024)
            .unwrap()
            .unwrap();
        assert_eq!(frame.publish, Some(PublishHeader { qos: 1, pkid: 7 }));
        match frame.packet {
            Packet::Publish(p, _) => {
                assert_eq!(&p.topic[..], b"a/b");
                assert_eq!(&p.payload[..], b"hi");
            }
            _ => panic!("publish expected"),
        }
        assert!(buf.is_empty());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let codec = Codec::new(Version::V5);
        let mut seed: u32 = 12345;
        for _ in 0..2000 {
            let mut bytes = Vec::new();
            for _ in 0..(seed % 40) {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                bytes.push((seed >> 16) as u8);
            }
            let mut buf = BytesMut::from(&bytes[..]);
            let _ = codec.read(&mut buf, 1024);
            let mut buf = BytesMut::from(&bytes[..]);
            let _ = read_connect(&mut buf, 1024);
            seed = seed.wrapping_add(7);
        }
    }
}
