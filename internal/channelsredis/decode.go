package channelsredis

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"

	"github.com/heraldhq/herald/internal/jsonstr"
)

// Limits of what Decode accepts.
const (
	// DefaultMaxMessage bounds a message as read from Redis and the JSON
	// made of its data.
	DefaultMaxMessage = 1 << 20
	// maxDepth bounds the nesting of arrays and maps: a hostile message of
	// a million nested one-element arrays must not take a million stack
	// frames.
	maxDepth = 100
	// randomPrefix is what RedisChannelLayer puts before each message it
	// stores, so identical messages stay distinct members of the channel's
	// sorted set.
	randomPrefix = 12
)

// ErrDecode is wrapped by every error of Decode: the message is not one a
// Channels consumer would have handled.
var ErrDecode = errors.New("channels_redis message")

// Message is a group_send message as herald uses it: its type (what
// selects the consumer's handler) and its data as JSON.
type Message struct {
	Type string
	// Data is the JSON of the message's "data", what the seeds' handlers
	// send on as {"type": …, "data": event["data"]}.
	Data []byte
}

// DecodeCore decodes a message as RedisChannelLayer stores it in a
// channel's sorted set: a random prefix, then msgpack.
func DecodeCore(b []byte, max int) (Message, error) {
	if len(b) <= randomPrefix {
		return Message{}, fmt.Errorf("%w: %d bytes, shorter than its random prefix", ErrDecode, len(b))
	}
	return Decode(b[randomPrefix:], max)
}

// Decode decodes a msgpack-encoded group_send message (as
// RedisPubSubChannelLayer publishes it, and RedisChannelLayer stores it
// after its prefix). The message must be a map with string keys, a string
// "type" and a "data" that JSON can carry: what a consumer's
// json.dumps({'type': …, 'data': event['data']}) accepts. Other keys
// (__asgi_channel__ among them) are skipped. msgpack bin, ext types, NaN
// and infinities, maps with keys other than strings or with a key twice,
// invalid UTF-8 and nesting deeper than 100 are refused, as are messages
// and data longer than max bytes.
func Decode(b []byte, max int) (Message, error) {
	if max <= 0 {
		max = DefaultMaxMessage
	}
	if len(b) > max {
		return Message{}, fmt.Errorf("%w: %d bytes, more than %d", ErrDecode, len(b), max)
	}
	if bytes.HasPrefix(b, []byte("gAAAAA")) {
		// A Fernet token: the layer encrypts (symmetric_encryption_keys).
		return Message{}, fmt.Errorf("%w: encrypted (symmetric_encryption_keys), which herald does not support", ErrDecode)
	}
	r := bytes.NewReader(b)
	d := msgpack.NewDecoder(r)
	x := transcoder{d: d}
	n, err := x.mapLen()
	if err != nil {
		return Message{}, err
	}
	var m Message
	var haveType, haveData bool
	seen := make(map[string]struct{}, min(n, 8)) // n is what the message claims
	for range n {
		k, err := x.key(seen)
		if err != nil {
			return Message{}, err
		}
		switch k {
		case "type":
			c, err := d.PeekCode()
			if err != nil {
				return Message{}, x.fail(err)
			}
			if !msgpcode.IsString(c) {
				return Message{}, fmt.Errorf("%w: type is not a string", ErrDecode)
			}
			if m.Type, err = x.str(); err != nil {
				return Message{}, err
			}
			haveType = true
		case "data":
			if err := x.value(0); err != nil {
				return Message{}, err
			}
			m.Data = x.out
			haveData = true
		default:
			if err := d.Skip(); err != nil {
				return Message{}, x.fail(err)
			}
		}
	}
	if r.Len() > 0 {
		return Message{}, fmt.Errorf("%w: %d bytes after the message", ErrDecode, r.Len())
	}
	switch {
	case !haveType:
		return Message{}, fmt.Errorf("%w: no type", ErrDecode)
	case !haveData:
		// The seeds' handlers read event['data']: without it they fail.
		return Message{}, fmt.Errorf("%w: no data", ErrDecode)
	case len(m.Data) > max:
		return Message{}, fmt.Errorf("%w: data is %d bytes of JSON, more than %d", ErrDecode, len(m.Data), max)
	}
	return m, nil
}

// transcoder writes msgpack values as JSON, in the order of their keys.
type transcoder struct {
	d   *msgpack.Decoder
	out []byte
}

func (x *transcoder) fail(err error) error {
	return fmt.Errorf("%w: %v", ErrDecode, err)
}

func (x *transcoder) mapLen() (int, error) {
	c, err := x.d.PeekCode()
	if err != nil {
		return 0, x.fail(err)
	}
	if !msgpcode.IsFixedMap(c) && c != msgpcode.Map16 && c != msgpcode.Map32 {
		return 0, fmt.Errorf("%w: not a map (code 0x%02x)", ErrDecode, c)
	}
	n, err := x.d.DecodeMapLen()
	if err != nil {
		return 0, x.fail(err)
	}
	return n, nil
}

// key reads a map key, which must be a string not seen before in its map
// (Python's msgpack refuses other keys, and a dict has each key once).
func (x *transcoder) key(seen map[string]struct{}) (string, error) {
	c, err := x.d.PeekCode()
	if err != nil {
		return "", x.fail(err)
	}
	if !msgpcode.IsString(c) {
		return "", fmt.Errorf("%w: a map key is not a string (code 0x%02x)", ErrDecode, c)
	}
	k, err := x.str()
	if err != nil {
		return "", err
	}
	if _, dup := seen[k]; dup {
		return "", fmt.Errorf("%w: key %q twice in a map", ErrDecode, k)
	}
	seen[k] = struct{}{}
	return k, nil
}

func (x *transcoder) str() (string, error) {
	s, err := x.d.DecodeString()
	if err != nil {
		return "", x.fail(err)
	}
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("%w: a string is not valid UTF-8", ErrDecode)
	}
	return s, nil
}

// value appends the next msgpack value to x.out as JSON.
func (x *transcoder) value(depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("%w: nested deeper than %d", ErrDecode, maxDepth)
	}
	d := x.d
	c, err := d.PeekCode()
	if err != nil {
		return x.fail(err)
	}
	switch {
	case c == msgpcode.Nil:
		if err := d.DecodeNil(); err != nil {
			return x.fail(err)
		}
		x.out = append(x.out, "null"...)
	case c == msgpcode.False || c == msgpcode.True:
		v, err := d.DecodeBool()
		if err != nil {
			return x.fail(err)
		}
		x.out = strconv.AppendBool(x.out, v)
	case msgpcode.IsFixedNum(c) && int8(c) >= 0, c == msgpcode.Uint8, c == msgpcode.Uint16, c == msgpcode.Uint32, c == msgpcode.Uint64:
		v, err := d.DecodeUint64()
		if err != nil {
			return x.fail(err)
		}
		x.out = strconv.AppendUint(x.out, v, 10)
	case msgpcode.IsFixedNum(c), c == msgpcode.Int8, c == msgpcode.Int16, c == msgpcode.Int32, c == msgpcode.Int64:
		v, err := d.DecodeInt64()
		if err != nil {
			return x.fail(err)
		}
		x.out = strconv.AppendInt(x.out, v, 10)
	case c == msgpcode.Float || c == msgpcode.Double:
		// A float32 is a Python float (a double) once unpacked.
		v, err := d.DecodeFloat64()
		if err != nil {
			return x.fail(err)
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("%w: %v has no JSON form", ErrDecode, v)
		}
		x.out = appendFloat(x.out, v)
	case msgpcode.IsString(c):
		s, err := x.str()
		if err != nil {
			return err
		}
		x.out = jsonstr.Append(x.out, s)
	case msgpcode.IsFixedArray(c), c == msgpcode.Array16, c == msgpcode.Array32:
		n, err := d.DecodeArrayLen()
		if err != nil {
			return x.fail(err)
		}
		x.out = append(x.out, '[')
		for i := range n {
			if i > 0 {
				x.out = append(x.out, ',')
			}
			if err := x.value(depth + 1); err != nil {
				return err
			}
		}
		x.out = append(x.out, ']')
	case msgpcode.IsFixedMap(c), c == msgpcode.Map16, c == msgpcode.Map32:
		n, err := d.DecodeMapLen()
		if err != nil {
			return x.fail(err)
		}
		x.out = append(x.out, '{')
		seen := make(map[string]struct{}, min(n, 64))
		for i := range n {
			if i > 0 {
				x.out = append(x.out, ',')
			}
			k, err := x.key(seen)
			if err != nil {
				return err
			}
			x.out = jsonstr.Append(x.out, k)
			x.out = append(x.out, ':')
			if err := x.value(depth + 1); err != nil {
				return err
			}
		}
		x.out = append(x.out, '}')
	case msgpcode.IsBin(c):
		// Python bytes: json.dumps in the consumer would fail on them.
		return fmt.Errorf("%w: bytes (msgpack bin) have no JSON form", ErrDecode)
	case msgpcode.IsExt(c):
		return fmt.Errorf("%w: a msgpack extension type has no JSON form", ErrDecode)
	default:
		return fmt.Errorf("%w: unknown msgpack code 0x%02x", ErrDecode, c)
	}
	return nil
}

// appendFloat writes v as Python's json.dumps does (repr): the shortest
// digits that read back as v, positional from 1e-4 up to 1e16 with ".0"
// on whole numbers, scientific with a two-digit exponent otherwise.
func appendFloat(dst []byte, v float64) []byte {
	s := strconv.FormatFloat(v, 'e', -1, 64) // -d.ddde±dd
	mant, exp, _ := bytes.Cut([]byte(s), []byte("e"))
	e, _ := strconv.Atoi(string(exp))
	if mant[0] == '-' {
		dst = append(dst, '-')
		mant = mant[1:]
	}
	digits := bytes.ReplaceAll(mant, []byte("."), nil)
	if e < -4 || e >= 16 {
		dst = append(dst, digits[0])
		if len(digits) > 1 {
			dst = append(dst, '.')
			dst = append(dst, digits[1:]...)
		}
		dst = append(dst, 'e')
		if e < 0 {
			dst = append(dst, '-')
			e = -e
		} else {
			dst = append(dst, '+')
		}
		if e < 10 {
			dst = append(dst, '0')
		}
		return strconv.AppendInt(dst, int64(e), 10)
	}
	if e < 0 {
		dst = append(dst, "0."...)
		for range -e - 1 {
			dst = append(dst, '0')
		}
		return append(dst, digits...)
	}
	if len(digits) <= e+1 {
		dst = append(dst, digits...)
		for range e + 1 - len(digits) {
			dst = append(dst, '0')
		}
		return append(dst, ".0"...)
	}
	dst = append(dst, digits[:e+1]...)
	dst = append(dst, '.')
	return append(dst, digits[e+1:]...)
}
