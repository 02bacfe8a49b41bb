package lane

import "strings"

// The W3C baggage parser is written here rather than taken from OpenTelemetry's baggage
// package because it runs on every proxied request: this one allocates nothing to find a
// member, and tolerates what OpenTelemetry would reject as a whole (one bad member) only
// where the spec allows. See https://www.w3.org/TR/baggage/.

// maxBaggage is the W3C limit on the whole header; longer values are treated as malformed.
const maxBaggage = 8192

// BaggageMember returns the value of member key in a W3C baggage header value, ignoring
// member properties (";prop"). ok is false when the header is malformed or key is absent.
// Percent-encoded values are returned decoded.
func BaggageMember(header, key string) (value string, ok bool) {
	if len(header) > maxBaggage {
		return "", false
	}
	found := ""
	hit := false
	for rest := header; ; {
		var member string
		if i := strings.IndexByte(rest, ','); i >= 0 {
			member, rest = rest[:i], rest[i+1:]
		} else {
			member, rest = rest, ""
		}
		k, v, valid := parseMember(member)
		if !valid {
			return "", false
		}
		if k == key && !hit {
			found, hit = v, true
		}
		if rest == "" {
			break
		}
	}
	if !hit {
		return "", false
	}
	if strings.IndexByte(found, '%') >= 0 {
		decoded, err := percentDecode(found)
		if err != nil {
			return "", false
		}
		return decoded, true
	}
	return found, true
}

// SetBaggageMember returns header with member key set to value: replaced where present, else
// appended. ok is false when header is malformed, in which case it must be left unchanged.
// value must already be a valid lane (no encoding needed).
func SetBaggageMember(header, key, value string) (string, bool) {
	if len(header) > maxBaggage {
		return "", false
	}
	members := strings.Split(header, ",")
	kept := members[:0]
	replaced := false
	for _, member := range members {
		k, _, valid := parseMember(member)
		switch {
		case !valid:
			return "", false
		case k == "": // an empty list element, allowed by the spec; dropped
		case k != key:
			kept = append(kept, strings.TrimSpace(member))
		case !replaced: // the first copy is replaced in place; later copies could disagree
			kept = append(kept, key+"="+value)
			replaced = true
		}
	}
	if !replaced {
		kept = append(kept, key+"="+value)
	}
	return strings.Join(kept, ","), true
}

// parseMember splits one list member "key=value;props" (optional surrounding whitespace).
// An empty member is valid and returns k == "".
func parseMember(member string) (k, v string, ok bool) {
	member = strings.TrimSpace(member)
	if member == "" {
		return "", "", true
	}
	if i := strings.IndexByte(member, ';'); i >= 0 {
		member = member[:i]
	}
	eq := strings.IndexByte(member, '=')
	if eq <= 0 {
		return "", "", false
	}
	k = strings.TrimSpace(member[:eq])
	v = strings.TrimSpace(member[eq+1:])
	if !isToken(k) || !isBaggageValue(v) {
		return "", "", false
	}
	return k, v, true
}

// isToken reports whether s is an RFC 7230 token, the grammar of a baggage key.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tokenByte[s[i]] {
			return false
		}
	}
	return true
}

// tokenByte marks the RFC 7230 tchars. A table, because the check runs for every byte of
// every baggage key (and header name) on every request.
var tokenByte = func() (t [256]bool) {
	for c := 0x21; c < 0x7f; c++ {
		t[c] = strings.IndexByte("\"(),/:;<=>?@[\\]{}", byte(c)) < 0
	}
	return t
}()

// isBaggageValue reports whether s uses only baggage-octets (and percent escapes).
func isBaggageValue(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e || c == '"' || c == ',' || c == ';' || c == '\\' {
			return false
		}
	}
	return true
}

func percentDecode(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) || unhex(s[i+1]) < 0 || unhex(s[i+2]) < 0 {
			return "", errBadEscape
		}
		b.WriteByte(byte(unhex(s[i+1])<<4 | unhex(s[i+2])))
		i += 2
	}
	return b.String(), nil
}

type baggageError string

func (e baggageError) Error() string { return string(e) }

const errBadEscape = baggageError("lane: bad percent escape in baggage")

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}

// RemoveBaggageMember returns header without any member named key. ok is false when header
// is malformed.
func RemoveBaggageMember(header, key string) (string, bool) {
	members := strings.Split(header, ",")
	kept := members[:0]
	for _, member := range members {
		k, _, valid := parseMember(member)
		if !valid {
			return "", false
		}
		if k != "" && k != key {
			kept = append(kept, strings.TrimSpace(member))
		}
	}
	return strings.Join(kept, ","), true
}
