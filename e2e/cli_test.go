package e2e

import (
	"os/exec"
	"strings"
	"testing"
)

// TestHelpEverywhere checks every subcommand answers --help with its usage, and version.
func TestHelpEverywhere(t *testing.T) {
	for _, cmd := range []string{"demo", "up", "control", "proxy", "lanes", "explain", "echo", "version"} {
		t.Run(cmd, func(t *testing.T) {
			out, err := exec.Command(binary, cmd, "--help").CombinedOutput()
			if err != nil {
				t.Fatalf("swimlane %s --help: %v\n%s", cmd, err, out)
			}
			if !strings.Contains(string(out), "Usage: swimlane "+cmd) {
				t.Errorf("swimlane %s --help lacks its usage line:\n%s", cmd, out)
			}
		})
	}
	out, err := exec.Command(binary, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "swimlane ") {
		t.Errorf("swimlane version: %v %q", err, out)
	}
	out, err = exec.Command(binary, "nonsense").CombinedOutput()
	if err == nil || !strings.Contains(string(out), `unknown command "nonsense"`) {
		t.Errorf("unknown command: %v %q", err, out)
	}
}
