//go:build unix

package local

import (
	"bufio"
	"os"
	"os/exec"
	"strconv"
	"testing"
)

// TestClaimPortExcludesOtherProcesses: a port one process claimed for its app cannot be
// claimed by another swimlane process until the first lets go of it, or exits; the test's
// other process is this test binary, holding a claim.
func TestClaimPortExcludesOtherProcesses(t *testing.T) {
	if p := os.Getenv("SWIMLANE_TEST_CLAIM_PORT"); p != "" { // the other process
		port, _ := strconv.Atoi(p)
		if _, ok := claimPort(port); !ok {
			os.Exit(3)
		}
		os.Stdout.WriteString("held\n")
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n') // until the test closes stdin
		os.Exit(0)
	}
	t.Setenv("TMPDIR", t.TempDir()) // the claim files, for both processes
	const port = 23456
	other := exec.Command(os.Args[0], "-test.run=^TestClaimPortExcludesOtherProcesses$")
	other.Env = append(os.Environ(), "SWIMLANE_TEST_CLAIM_PORT="+strconv.Itoa(port))
	stdin, _ := other.StdinPipe()
	stdout, _ := other.StdoutPipe()
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); _ = other.Process.Kill(); _ = other.Wait() })
	if line, err := bufio.NewReader(stdout).ReadString('\n'); line != "held\n" {
		t.Fatalf("the other process did not claim port %d: %q, %v", port, line, err)
	}

	if _, ok := claimPort(port); ok {
		t.Fatalf("port %d was claimed here while another process held it", port)
	}
	if release, ok := claimPort(port + 1); !ok {
		t.Fatalf("port %d, which nobody held, could not be claimed", port+1)
	} else {
		if _, again := claimPort(port + 1); again {
			t.Errorf("port %d was claimed twice at once within one process", port+1)
		}
		release()
		if _, ok := claimPort(port + 1); !ok {
			t.Errorf("port %d could not be claimed again after its release", port+1)
		}
	}

	stdin.Close() // the other process exits, and its claim with it
	if err := other.Wait(); err != nil {
		t.Fatalf("the other process: %v", err)
	}
	if _, ok := claimPort(port); !ok {
		t.Errorf("port %d stayed claimed after the process that held it exited", port)
	}
}

// TestReserveAppPortGivesBackOnRelease: a reserved port is claimed until released, and then
// free for a reservation again.
func TestReserveAppPortGivesBackOnRelease(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	port, release, err := reserveAppPort()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := claimPort(port); ok {
		t.Fatalf("reserved port %d was not claimed", port)
	}
	if handedOut.take(port) {
		t.Fatalf("reserved port %d was not in the handed-out set", port)
	}
	release()
	if !handedOut.take(port) {
		t.Fatalf("released port %d stayed handed out", port)
	}
	handedOut.give(port)
	unclaim, ok := claimPort(port)
	if !ok {
		t.Fatalf("released port %d stayed claimed", port)
	}
	unclaim()
}
