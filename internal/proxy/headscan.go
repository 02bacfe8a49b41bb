package proxy

import (
	"encoding/binary"
	"math/bits"
	"strings"
)

// headScan is what one pass over the bytes of a head found: where it ends,
// whether its bytes are all allowed, and where its first lines end. Why by hand and in one
// pass: every request and answer head went over its bytes four times before (finding the
// end, validHead, cutting lines, cutting at the colon), a third of the proxy's own
// instructions per request.
type headScan struct {
	end int // the head's length through the empty line that ends it; -1 when there is none
	// valid: the head is free of control bytes other than tab and line ends, which a
	// request could otherwise smuggle into what the proxy forwards, and each CR ends a line
	// (a bare one is a line end to some parsers and part of a value to others, RFC 9112
	// section 2.2).
	valid bool
	// lfs are the offsets of the head's first n LFs, its lines' ends, the empty line's too.
	n   int
	lfs [maxScanLines]uint32
}

// maxScanLines is how many line ends a scan records: more than usual heads have. The lines
// of a longer head past them are cut by searching.
const maxScanLines = 24

// scanHead scans b, which starts with a head's first line (not an empty one), eight bytes at
// a time: a word without control bytes passes on two three-operation tests, and one with
// some (each line end) is checked by exact per-byte masks, which also give its LFs.
func scanHead(b []byte, s *headScan) {
	s.end, s.valid, s.n = -1, true, 0
	bad := -1     // the first byte not allowed (see valid)
	lastLF := -10 // far enough back that no line before the first is empty
	i := 0
	for rest := b; len(rest) >= 8; rest, i = rest[8:], i+8 {
		w := binary.LittleEndian.Uint64(rest)
		if !anyByteBelow(w, 0x20) && !anyZeroByte(w^0x7f7f7f7f7f7f7f7f) {
			continue // no control byte, no DEL: most words
		}
		ctl := zeroBytes(w & 0xe0e0e0e0e0e0e0e0)
		del := zeroBytes(w ^ 0x7f7f7f7f7f7f7f7f)
		cr := zeroBytes(w ^ 0x0d0d0d0d0d0d0d0d)
		lf := zeroBytes(w ^ 0x0a0a0a0a0a0a0a0a)
		tab := zeroBytes(w ^ 0x0909090909090909)
		// Refused: DEL, a control byte other than CR, LF and tab, and a CR not followed by
		// an LF (in this word; a CR in its last byte looks at the next word's first).
		refused := del | ctl&^(cr|lf|tab) | cr&^(lf>>8)&^(1<<63)
		if cr>>63 != 0 && (i+8 == len(b) || b[i+8] != '\n') {
			refused |= 1 << 63
		}
		if refused != 0 && bad < 0 {
			bad = i + bits.TrailingZeros64(refused)/8
		}
		for m := lf; m != 0; m &= m - 1 {
			p := i + bits.TrailingZeros64(m)/8
			if s.lineEnd(b, p, &lastLF, bad) {
				return
			}
		}
	}
	for ; i < len(b); i++ {
		switch headBytes[b[i]] {
		case headByteOK:
			if b[i] == '\n' && s.lineEnd(b, i, &lastLF, bad) {
				return
			}
		case headByteCR:
			if (i+1 == len(b) || b[i+1] != '\n') && bad < 0 {
				bad = i
			}
		default:
			if bad < 0 {
				bad = i
			}
		}
	}
}

// load64 is the eight bytes of s from i as a little-endian word (one load: the compiler joins
// the byte loads).
func load64(s string, i int) uint64 {
	s = s[i : i+8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// zeroBytes marks each zero byte of w with its high bit, exactly: no byte's sum carries into
// the next.
func zeroBytes(w uint64) uint64 {
	const low7 = 0x7f7f7f7f7f7f7f7f
	return ^((w&low7 + low7) | w) & 0x8080808080808080
}

// anyByteBelow reports whether a byte of w is below n (at most 0x80): whether, exactly, not
// which (a borrow may mark bytes above the first such), for three operations.
func anyByteBelow(w uint64, n byte) bool {
	return (w-uint64(n)*0x0101010101010101)&^w&0x8080808080808080 != 0
}

// anyZeroByte reports whether a byte of w is zero, as anyByteBelow(w, 1).
func anyZeroByte(w uint64) bool { return anyByteBelow(w, 1) }

// lineEnd records the LF at p and reports whether it ends the head: it ends an empty line
// ("\n\n" or "\n\r\n"). Then end and valid are set.
func (s *headScan) lineEnd(b []byte, p int, lastLF *int, bad int) bool {
	if s.n < maxScanLines {
		s.lfs[s.n] = uint32(p)
		s.n++
	}
	if p == *lastLF+1 || p == *lastLF+2 && b[p-1] == '\r' {
		s.end = p + 1
		s.valid = bad < 0 || bad >= s.end
		return true
	}
	*lastLF = p
	return false
}

// lineCutter cuts a head into lines: at the LFs a scan found while they last, then by
// searching.
type lineCutter struct {
	s    string   // what is left of the head
	off  int      // where s starts in the head
	lfs  []uint32 // the LFs found in the head (offsets)
	next int      // the first of lfs in s
}

// cut cuts the next line off, without its line end; crlf reports a CRLF end (not LF alone,
// nor none, at the end of what is left).
func (c *lineCutter) cut() (line string, crlf bool) {
	var i int
	if c.next < len(c.lfs) {
		i = int(c.lfs[c.next]) - c.off
		c.next++
	} else if i = strings.IndexByte(c.s, '\n'); i < 0 {
		line, c.s = c.s, ""
		c.off += len(line)
		return line, false
	}
	line, c.s = c.s[:i], c.s[i+1:]
	c.off += i + 1
	if strings.HasSuffix(line, "\r") {
		return line[:len(line)-1], true
	}
	return line, false
}
