package config

import (
	"strings"
	"testing"
)

func TestLegacyAndGoDurations(t *testing.T) {
	const head = "apiVersion: networking.istio.io/v1alpha3\nkind: VirtualService\nmetadata: {name: authors}\nspec:\n  hosts: [authors]\n  http:\n  - route:\n    - destination: {host: authors}\n    fault:\n"
	tests := []struct {
		name    string
		give    string
		wantErr string
		check   func(t *testing.T, s *Set)
	}{
		{
			name: "legacy abort percent becomes percentage",
			give: head + "      abort: {httpStatus: 500, percent: 50}\n",
			check: func(t *testing.T, s *Set) {
				if v := s.VirtualServices[0].Spec.GetHttp()[0].GetFault().GetAbort().GetPercentage().GetValue(); v != 50 {
					t.Errorf("percentage = %v, want 50", v)
				}
			},
		},
		{
			name:    "both forms",
			give:    head + "      abort: {httpStatus: 500, percent: 50, percentage: {value: 10}}\n",
			wantErr: "spec.http[0].fault.abort.percent: set either the legacy percent or percentage, not both",
		},
		{
			name: "go durations in any Duration field",
			give: head + "      delay: {fixedDelay: 1m30s}\n    timeout: 250ms\n    retries: {attempts: 3, perTryTimeout: 2s}\n",
			check: func(t *testing.T, s *Set) {
				r := s.VirtualServices[0].Spec.GetHttp()[0]
				if d := r.GetFault().GetDelay().GetFixedDelay().AsDuration().String(); d != "1m30s" {
					t.Errorf("fixedDelay = %s", d)
				}
				if d := r.GetTimeout().AsDuration().String(); d != "250ms" {
					t.Errorf("timeout = %s", d)
				}
				if d := r.GetRetries().GetPerTryTimeout().AsDuration().String(); d != "2s" {
					t.Errorf("perTryTimeout = %s", d)
				}
			},
		},
		{
			name:    "a bad duration is still an error with its line",
			give:    head + "      delay: {fixedDelay: soon}\n",
			wantErr: "test.yaml:10: VirtualService/authors: spec.http[0].fault.delay.fixedDelay",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := Parse("test.yaml", []byte(tt.give))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, set)
		})
	}
}
