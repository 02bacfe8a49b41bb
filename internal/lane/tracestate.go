package lane

import "strings"

// The W3C tracestate parser, like the baggage one, is hand-written because it runs on every
// proxied request that carries trace context: finding a member allocates nothing (the members
// are sliced out of the header into a fixed array on the stack). The grammar, from
// https://www.w3.org/TR/trace-context/#tracestate-header:
//
//	list             = list-member 0*31( OWS "," OWS list-member )
//	list-member      = (key "=" value) / OWS
//	key              = simple-key / multi-tenant-key
//	simple-key       = lcalpha 0*255( lcalpha / DIGIT / "_" / "-"/ "*" / "/" )
//	multi-tenant-key = tenant-id "@" system-id
//	tenant-id        = ( lcalpha / DIGIT ) 0*240( lcalpha / DIGIT / "_" / "-"/ "*" / "/" )
//	system-id        = lcalpha 0*13( lcalpha / DIGIT / "_" / "-"/ "*" / "/" )
//	value            = 0*255(chr) nblk-chr
//	nblk-chr         = %x21-2B / %x2D-3C / %x3E-7E
//	chr              = %x20 / nblk-chr
//
// A header is malformed, and so neither read nor edited, when a member breaks this grammar,
// when it has more than 32 members, or when a key repeats (keys are unique in the spec, and
// OpenTelemetry rejects such headers whole). Empty and whitespace-only members are allowed.

const (
	// maxTraceStateMembers is the spec's limit on list members.
	maxTraceStateMembers = 32
	// maxTraceState bounds the scan; 32 maximal members take 16,447 bytes.
	maxTraceState = 32 << 10
	maxTSKey      = 256
	maxTSValue    = 256
)

type tsMember struct{ key, value string }

// tsList holds a parsed header's members, in order, sliced from the header.
type tsList struct {
	n int
	m [maxTraceStateMembers]tsMember
}

// parse fills l from header and reports whether header is well-formed.
func (l *tsList) parse(header string) bool {
	l.n = 0
	if len(header) > maxTraceState {
		return false
	}
	for rest := header; ; {
		var member string
		if i := strings.IndexByte(rest, ','); i >= 0 {
			member, rest = rest[:i], rest[i+1:]
		} else {
			member, rest = rest, ""
		}
		if member = trimOWS(member); member != "" {
			eq := strings.IndexByte(member, '=')
			if eq < 0 || l.n == maxTraceStateMembers {
				return false
			}
			k, v := member[:eq], member[eq+1:]
			if !validTraceStateKey(k) || !validTraceStateValue(v) || l.index(k) >= 0 {
				return false
			}
			l.m[l.n] = tsMember{key: k, value: v}
			l.n++
		}
		if rest == "" {
			return true
		}
	}
}

// index returns the position of key in l, or -1.
func (l *tsList) index(key string) int {
	for i := 0; i < l.n; i++ {
		if l.m[i].key == key {
			return i
		}
	}
	return -1
}

// write renders l's members, leaving out index skip (-1 for none), after prefix (which, if
// not empty, is a whole member). At most limit members are written in all.
func (l *tsList) write(prefix string, skip, limit int) string {
	size := len(prefix)
	for i := 0; i < l.n; i++ {
		size += len(l.m[i].key) + len(l.m[i].value) + 2
	}
	var b strings.Builder
	b.Grow(size)
	b.WriteString(prefix)
	written := 0
	if prefix != "" {
		written = 1
	}
	for i := 0; i < l.n && written < limit; i++ {
		if i == skip {
			continue
		}
		if written > 0 {
			b.WriteByte(',')
		}
		b.WriteString(l.m[i].key)
		b.WriteByte('=')
		b.WriteString(l.m[i].value)
		written++
	}
	return b.String()
}

// TraceStateMember returns the value of member key in a W3C tracestate header value. ok is
// false when the header is malformed or key is absent.
func TraceStateMember(header, key string) (value string, ok bool) {
	var l tsList
	if !l.parse(header) {
		return "", false
	}
	if i := l.index(key); i >= 0 {
		return l.m[i].value, true
	}
	return "", false
}

// SetTraceStateMember returns header with member key=value at the front, where the spec puts
// an added or updated member, and any earlier copy of key removed. When the list would grow
// past 32 members the right-most one is dropped, as the spec asks. ok is false when header is
// malformed (it must then be left unchanged) or key=value is not a valid member.
func SetTraceStateMember(header, key, value string) (string, bool) {
	if !validTraceStateKey(key) || !validTraceStateValue(value) {
		return "", false
	}
	var l tsList
	if !l.parse(header) {
		return "", false
	}
	return l.write(key+"="+value, l.index(key), maxTraceStateMembers), true
}

// RemoveTraceStateMember returns header without member key; other members keep their order.
// ok is false when header is malformed.
func RemoveTraceStateMember(header, key string) (string, bool) {
	out, _, ok := removeTraceStateMember(header, key)
	return out, ok
}

// removeTraceStateMember is RemoveTraceStateMember that also says whether key was there; when
// it was not, header is returned as it is.
func removeTraceStateMember(header, key string) (out string, removed, ok bool) {
	var l tsList
	if !l.parse(header) {
		return "", false, false
	}
	i := l.index(key)
	if i < 0 {
		return header, false, true
	}
	return l.write("", i, maxTraceStateMembers), true, true
}

// validTraceStateKey reports whether k is a tracestate key. A lane's BaggageKey must be one
// for the lane to travel in tracestate; "swimlane" is.
func validTraceStateKey(k string) bool {
	if len(k) == 0 || len(k) > maxTSKey {
		return false
	}
	tenant, system, multi := strings.Cut(k, "@")
	if !multi {
		return isLCAlpha(k[0]) && tsKeyChars(k[1:])
	}
	return len(tenant) >= 1 && len(tenant) <= 241 && (isLCAlpha(tenant[0]) || isDigit(tenant[0])) && tsKeyChars(tenant[1:]) &&
		len(system) >= 1 && len(system) <= 14 && isLCAlpha(system[0]) && tsKeyChars(system[1:])
}

// tsKeyChars reports whether s is all lcalpha / DIGIT / "_" / "-" / "*" / "/".
func tsKeyChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isLCAlpha(c) && !isDigit(c) && c != '_' && c != '-' && c != '*' && c != '/' {
			return false
		}
	}
	return true
}

// validTraceStateValue reports whether v is a tracestate value: 1 to 256 printable ASCII
// characters other than "," and "=", the last not a space.
func validTraceStateValue(v string) bool {
	if len(v) == 0 || len(v) > maxTSValue || v[len(v)-1] == ' ' {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c > 0x7e || c == ',' || c == '=' {
			return false
		}
	}
	return true
}

func isLCAlpha(c byte) bool { return 'a' <= c && c <= 'z' }
func isDigit(c byte) bool   { return '0' <= c && c <= '9' }

// trimOWS trims the spec's optional whitespace (spaces and tabs) from both ends of s.
func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}
