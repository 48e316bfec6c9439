package wire

import (
	"net/netip"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"pgregory.net/rapid"
)

// cmpOpts compares messages: netip values by their String, nil and empty
// slices as equal (the wire does not tell them apart).
var cmpOpts = cmp.Options{
	cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b }),
	cmpopts.EquateEmpty(),
}

func genAddrPort() *rapid.Generator[netip.AddrPort] {
	return rapid.Custom(func(t *rapid.T) netip.AddrPort {
		switch rapid.IntRange(0, 2).Draw(t, "family") {
		case 0:
			return netip.AddrPort{}
		case 1:
			b := [4]byte(rapid.SliceOfN(rapid.Byte(), 4, 4).Draw(t, "v4"))
			return netip.AddrPortFrom(netip.AddrFrom4(b), rapid.Uint16().Draw(t, "port"))
		default:
			b := [16]byte(rapid.SliceOfN(rapid.Byte(), 16, 16).Draw(t, "v6"))
			return netip.AddrPortFrom(netip.AddrFrom16(b), rapid.Uint16().Draw(t, "port"))
		}
	})
}

// genUint64 favours the boundaries between msgpack integer forms.
func genUint64() *rapid.Generator[uint64] {
	return rapid.OneOf(
		rapid.SampledFrom([]uint64{0, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0xffffffff, 0x100000000, 1<<64 - 1}),
		rapid.Uint64(),
	)
}

func genUint32() *rapid.Generator[uint32] {
	return rapid.Map(genUint64(), func(v uint64) uint32 { return uint32(v) })
}

func genName() *rapid.Generator[string] {
	return rapid.OneOf(rapid.StringN(0, 40, -1), rapid.StringN(30, 300, -1))
}

func genBytes() *rapid.Generator[[]byte] {
	return rapid.OneOf(rapid.SliceOfN(rapid.Byte(), 0, 40), rapid.SliceOfN(rapid.Byte(), 250, 70000))
}

// genMessage draws any message type.
func genMessage() *rapid.Generator[Message] {
	return rapid.Custom(func(t *rapid.T) Message {
		switch Type(rapid.IntRange(int(TypePing), int(TypeData)).Draw(t, "type")) {
		case TypePing:
			return &Ping{Seq: genUint32().Draw(t, "seq"), Target: genName().Draw(t, "target"),
				SourceName: genName().Draw(t, "source"), SourceAddr: genAddrPort().Draw(t, "addr")}
		case TypeIndirectPing:
			return &IndirectPing{Seq: genUint32().Draw(t, "seq"), Target: genName().Draw(t, "target"),
				TargetAddr: genAddrPort().Draw(t, "taddr"), WantNack: rapid.Bool().Draw(t, "nack"),
				SourceName: genName().Draw(t, "source"), SourceAddr: genAddrPort().Draw(t, "saddr")}
		case TypeAck:
			return &Ack{Seq: genUint32().Draw(t, "seq"), Payload: genBytes().Draw(t, "payload")}
		case TypeNack:
			return &Nack{Seq: genUint32().Draw(t, "seq")}
		case TypeAlive:
			return &Alive{Name: genName().Draw(t, "name"), Gen: genUint64().Draw(t, "gen"),
				Incarnation: genUint64().Draw(t, "inc"), Addr: genAddrPort().Draw(t, "addr"), Meta: genBytes().Draw(t, "meta")}
		case TypeSuspect:
			return &Suspect{Name: genName().Draw(t, "name"), Gen: genUint64().Draw(t, "gen"),
				Incarnation: genUint64().Draw(t, "inc"), From: genName().Draw(t, "from")}
		case TypeDead:
			return &Dead{Name: genName().Draw(t, "name"), Gen: genUint64().Draw(t, "gen"),
				Incarnation: genUint64().Draw(t, "inc"), From: genName().Draw(t, "from"), Left: rapid.Bool().Draw(t, "left")}
		case TypePushPull:
			return &PushPull{Join: rapid.Bool().Draw(t, "join"), Members: genUint32().Draw(t, "members"),
				StateBytes: genUint32().Draw(t, "state")}
		case TypeDigest:
			return &Digest{Entries: rapid.SliceOfN(rapid.Custom(func(t *rapid.T) DigestEntry {
				return DigestEntry{Name: genName().Draw(t, "name"), Gen: genUint64().Draw(t, "gen"),
					Incarnation: genUint64().Draw(t, "inc"), State: MemberState(rapid.Uint8().Draw(t, "state"))}
			}), 0, 20).Draw(t, "entries")}
		case TypeMembers:
			return &Members{Records: rapid.SliceOfN(rapid.Custom(func(t *rapid.T) MemberRecord {
				return MemberRecord{Name: genName().Draw(t, "name"), Gen: genUint64().Draw(t, "gen"),
					Incarnation: genUint64().Draw(t, "inc"), State: MemberState(rapid.Uint8().Draw(t, "state")),
					Addr: genAddrPort().Draw(t, "addr"), Meta: rapid.SliceOfN(rapid.Byte(), 0, 30).Draw(t, "meta")}
			}), 0, 20).Draw(t, "records")}
		default:
			return &Data{Kind: rapid.Uint8().Draw(t, "kind"), Payload: genBytes().Draw(t, "payload")}
		}
	})
}
