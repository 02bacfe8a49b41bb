//go:build unix

package local

import (
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// claimPort claims port for an app of this process against every other swimlane process on
// the machine: an exclusive flock on a file named for the port, held until release. Two
// `swimlane up` processes could otherwise both find one port free in the moment before
// either app binds it. ok is false while another process holds the claim. Where the claim
// file cannot be made (a temp dir shared with another user), it claims nothing and says ok:
// the port check and the per-process set still stand.
//
// The file is never removed: unlinking a locked file lets the next process lock a new one of
// the same name while the old lock still holds.
func claimPort(port int) (release func(), ok bool) {
	dir := filepath.Join(os.TempDir(), "swimlane-ports")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return func() {}, true
	}
	f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(port)), os.O_CREATE|os.O_RDONLY, 0o644)
	if err != nil {
		return func() {}, true
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, false
	}
	return func() { f.Close() }, true
}
