package loadtest

import (
	"unicode/utf8"
)

// parseFrame is the bench's fast path for the frames it receives by the thousand, acks and message
// events: it reads the fields of frame in one pass without reflection, so that the bench leaves more
// of the machine to the server it measures. It is exact or it declines: it returns true only when
// data is valid JSON that json.Unmarshal would decode into frame without error and to the same
// values; for anything else (another frame type, escapes in a field it reads, numbers it would not
// take as int64, case-folded keys outside ASCII, invalid JSON) it returns false and the caller uses
// json.Unmarshal. f must be zero.
func parseFrame(data []byte, f *frame) bool {
	p := parser{data: data}
	if !p.object(0, f.topField) || !p.end() {
		return false
	}
	return f.Type == "ack" || f.Type == "message"
}

// topField reads one member of the frame object; false declines the frame.
func (f *frame) topField(p *parser, key []byte) bool {
	switch {
	case foldEq(key, "type"):
		return p.str(&f.Type)
	case foldEq(key, "ref"):
		return p.str(&f.Ref)
	case foldEq(key, "client_msg_id"):
		return p.str(&f.ClientMsgID)
	case foldEq(key, "conversation_id"):
		return p.int(&f.ConversationID)
	case foldEq(key, "seq"):
		return p.int(&f.Seq)
	case foldEq(key, "dup"):
		return p.boolean(&f.Dup)
	case foldEq(key, "message"):
		return p.object(1, func(p *parser, key []byte) bool {
			switch {
			case foldEq(key, "client_msg_id"):
				return p.str(&f.Message.ClientMsgID)
			case foldEq(key, "sender_kind"):
				return p.str(&f.Message.SenderKind)
			}
			return p.skip(2)
		})
	case foldEq(key, "error"):
		return false // error frames are rare; json.Unmarshal reads them
	}
	return p.skip(1)
}

// foldEq reports whether key equals name (lower-case ASCII) ignoring ASCII case, as json.Unmarshal
// matches keys. A key with other bytes never equals; one that json might fold to a field through a
// Unicode rule (K as the Kelvin sign, s as the long s) is declined by keyASCII first.
func foldEq(key []byte, name string) bool {
	if len(key) != len(name) {
		return false
	}
	for i := range key {
		c := key[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != name[i] {
			return false
		}
	}
	return true
}

// maxDepth bounds nesting; deeper documents are declined (json.Unmarshal allows more).
const maxDepth = 64

type parser struct {
	data []byte
	i    int
}

func (p *parser) ws() {
	for p.i < len(p.data) {
		switch p.data[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) end() bool {
	p.ws()
	return p.i == len(p.data)
}

// object reads an object, calling member for each key (already read) to read its value.
func (p *parser) object(depth int, member func(p *parser, key []byte) bool) bool {
	p.ws()
	if depth > maxDepth || p.i >= len(p.data) || p.data[p.i] != '{' {
		return false
	}
	p.i++
	p.ws()
	if p.i < len(p.data) && p.data[p.i] == '}' {
		p.i++
		return true
	}
	for {
		p.ws()
		key, ok := p.rawString()
		if !ok || !keyASCII(key) {
			return false
		}
		p.ws()
		if p.i >= len(p.data) || p.data[p.i] != ':' {
			return false
		}
		p.i++
		if !member(p, key) {
			return false
		}
		p.ws()
		if p.i >= len(p.data) {
			return false
		}
		switch p.data[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			return true
		default:
			return false
		}
	}
}

// keyASCII reports whether a key is plain ASCII without escapes, whose matching foldEq decides.
func keyASCII(key []byte) bool {
	for _, c := range key {
		if c >= utf8.RuneSelf || c == '\\' {
			return false
		}
	}
	return true
}

// rawString reads a string and returns its bytes between the quotes, escapes undecoded; it checks
// the escapes and refuses control characters, as JSON does.
func (p *parser) rawString() ([]byte, bool) {
	if p.i >= len(p.data) || p.data[p.i] != '"' {
		return nil, false
	}
	p.i++
	start := p.i
	for p.i < len(p.data) {
		c := p.data[p.i]
		switch {
		case c == '"':
			s := p.data[start:p.i]
			p.i++
			return s, true
		case c < 0x20:
			return nil, false
		case c == '\\':
			p.i++
			if p.i >= len(p.data) {
				return nil, false
			}
			switch p.data[p.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				p.i++
			case 'u':
				if p.i+4 >= len(p.data) {
					return nil, false
				}
				for _, h := range p.data[p.i+1 : p.i+5] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return nil, false
					}
				}
				p.i += 5
			default:
				return nil, false
			}
		default:
			p.i++
		}
	}
	return nil, false
}

// str reads a string value into *dst: only plain, valid UTF-8 without escapes, which json.Unmarshal
// would copy as they are.
func (p *parser) str(dst *string) bool {
	p.ws()
	s, ok := p.rawString()
	if !ok || !utf8.Valid(s) {
		return false
	}
	for _, c := range s {
		if c == '\\' {
			return false
		}
	}
	*dst = string(s)
	return true
}

// int reads an integer literal that fits an int64 into *dst.
func (p *parser) int(dst *int64) bool {
	p.ws()
	neg := false
	if p.i < len(p.data) && p.data[p.i] == '-' {
		neg = true
		p.i++
	}
	start := p.i
	var n uint64
	for p.i < len(p.data) && '0' <= p.data[p.i] && p.data[p.i] <= '9' {
		if p.i-start >= 18 { // 18 digits always fit; longer ones go to json.Unmarshal
			return false
		}
		n = n*10 + uint64(p.data[p.i]-'0')
		p.i++
	}
	digits := p.i - start
	if digits == 0 || (digits > 1 && p.data[start] == '0') {
		return false
	}
	if p.i < len(p.data) {
		switch p.data[p.i] {
		case '.', 'e', 'E':
			return false // not an integer: json.Unmarshal fails on it for an int64 field
		}
	}
	*dst = int64(n)
	if neg {
		*dst = -*dst
	}
	return true
}

func (p *parser) boolean(dst *bool) bool {
	p.ws()
	switch {
	case p.literal("true"):
		*dst = true
	case p.literal("false"):
		*dst = false
	default:
		return false
	}
	return true
}

func (p *parser) literal(word string) bool {
	if len(p.data)-p.i < len(word) || string(p.data[p.i:p.i+len(word)]) != word {
		return false
	}
	p.i += len(word)
	return true
}

// skip reads and checks any value.
func (p *parser) skip(depth int) bool {
	p.ws()
	if depth > maxDepth || p.i >= len(p.data) {
		return false
	}
	switch c := p.data[p.i]; {
	case c == '{':
		return p.object(depth, func(p *parser, _ []byte) bool { return p.skip(depth + 1) })
	case c == '[':
		p.i++
		p.ws()
		if p.i < len(p.data) && p.data[p.i] == ']' {
			p.i++
			return true
		}
		for {
			if !p.skip(depth + 1) {
				return false
			}
			p.ws()
			if p.i >= len(p.data) {
				return false
			}
			switch p.data[p.i] {
			case ',':
				p.i++
			case ']':
				p.i++
				return true
			default:
				return false
			}
		}
	case c == '"':
		_, ok := p.rawString()
		return ok
	case c == '-' || '0' <= c && c <= '9':
		return p.number()
	default:
		return p.literal("true") || p.literal("false") || p.literal("null")
	}
}

// number reads a JSON number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func (p *parser) number() bool {
	if p.i < len(p.data) && p.data[p.i] == '-' {
		p.i++
	}
	digits := func() int {
		start := p.i
		for p.i < len(p.data) && '0' <= p.data[p.i] && p.data[p.i] <= '9' {
			p.i++
		}
		return p.i - start
	}
	start := p.i
	n := digits()
	if n == 0 || (n > 1 && p.data[start] == '0') {
		return false
	}
	if p.i < len(p.data) && p.data[p.i] == '.' {
		p.i++
		if digits() == 0 {
			return false
		}
	}
	if p.i < len(p.data) && (p.data[p.i] == 'e' || p.data[p.i] == 'E') {
		p.i++
		if p.i < len(p.data) && (p.data[p.i] == '+' || p.data[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return false
		}
	}
	return true
}
