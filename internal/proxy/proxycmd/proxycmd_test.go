package proxycmd

import "testing"

func TestConcurrency(t *testing.T) {
	tests := []struct {
		name            string
		flag            int
		envSet, gateway bool
		current, want   int
	}{
		{"sidecar on a big node gets 2", 0, false, false, 64, 2},
		{"sidecar pinned to one CPU keeps 1", 0, false, false, 1, 1},
		{"the flag wins", 4, false, false, 64, 4},
		{"the flag wins over the environment", 3, true, false, 64, 3},
		{"GOMAXPROCS in the environment is kept", 0, true, false, 16, 16},
		{"a gateway uses every CPU", 0, false, true, 64, 64},
	}
	for _, tt := range tests {
		if got := Concurrency(tt.flag, tt.envSet, tt.gateway, tt.current); got != tt.want {
			t.Errorf("%s: Concurrency(%d, %v, %v, %d) = %d, want %d", tt.name, tt.flag, tt.envSet, tt.gateway, tt.current, got, tt.want)
		}
	}
}
