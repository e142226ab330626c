package pricing

import (
	"math"
	"strings"
	"testing"
)

func TestCost(t *testing.T) {
	tests := []struct {
		model     string
		in, out   int64
		want      float64
		wantKnown bool
	}{
		{"gpt-4o-mini", 1_000_000, 1_000_000, 0.75, true},
		{"gpt-4o-mini", 2_000, 30, 0.0003 + 0.000018, true},
		{"gpt-4o", 1_000_000, 0, 2.50, true},
		{"gpt-4.1-mini", 0, 1_000_000, 1.60, true},
		{"gpt-4.1-nano", 500_000, 500_000, 0.25, true},
		{"text-embedding-3-small", 3_000_000, 0, 0.06, true},
		{"text-embedding-3-large", 1_000_000, 0, 0.13, true},
		{"text-embedding-ada-002", 1_000_000, 0, 0.10, true},
		{"paperpipe-offline-extractive", 9_000_000, 1_000_000, 0, true},
		{"paperpipe-offline-hash", 9_000_000, 0, 0, true},
		{"paperpipe-offline-tfidf-1ce1ab340f1d", 9_000_000, 0, 0, true},
		{"llama3.1:8b", 1_000_000, 1_000_000, 0, false},
	}
	d := Default()
	for _, tt := range tests {
		got, known := d.Cost(tt.model, tt.in, tt.out)
		if known != tt.wantKnown || math.Abs(got-tt.want) > 1e-12 {
			t.Errorf("Cost(%q, %d, %d) = %v, %v; want %v, %v", tt.model, tt.in, tt.out, got, known, tt.want, tt.wantKnown)
		}
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		model   string
		want    Price
		wantErr string
	}{
		{in: "", model: "gpt-4o-mini", want: Price{0.15, 0.60}},
		{in: "gpt-4o-mini=0.3/1.2", model: "gpt-4o-mini", want: Price{0.3, 1.2}},
		{in: " llama3=0 / 0 , nomic-embed-text=0.01 ", model: "nomic-embed-text", want: Price{0.01, 0}},
		{in: "llama3=0/0,", model: "llama3", want: Price{}},
		{in: "my-model=$1.5/$2", model: "my-model", want: Price{1.5, 2}},
		{in: "x=0.1,gpt-4o=5/15", model: "gpt-4o", want: Price{5, 15}},
		{in: "gpt-4o-mini", wantErr: "want model=input/output"},
		{in: "=1/2", wantErr: "want model=input/output"},
		{in: "m=abc", wantErr: "input price"},
		{in: "m=1/xyz", wantErr: "output price"},
		{in: "m=-1", wantErr: "not a price"},
		{in: "m=NaN", wantErr: "not a price"},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Parse(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if got[tt.model] != tt.want {
			t.Errorf("Parse(%q)[%q] = %+v, want %+v", tt.in, tt.model, got[tt.model], tt.want)
		}
		// Defaults not named survive the merge.
		if tt.model != "text-embedding-3-small" && got["text-embedding-3-small"] != (Price{InputPerM: 0.02}) {
			t.Errorf("Parse(%q) lost the default of text-embedding-3-small: %+v", tt.in, got["text-embedding-3-small"])
		}
	}
}

func TestDefaultIsACopy(t *testing.T) {
	a := Default()
	a["gpt-4o"] = Price{}
	if Default()["gpt-4o"] == (Price{}) {
		t.Fatal("changing one Default() table changed the next")
	}
}

func TestUsageCostHalvesTheBatchAPIKinds(t *testing.T) {
	tab, err := Parse("m=2/8")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		kind string
		want float64
	}{
		{"chat", 10},
		{"embedding", 10},
		{"chat" + BatchSuffix, 5},
		{"embedding" + BatchSuffix, 5},
	} {
		got, known := tab.UsageCost("m", tc.kind, 1_000_000, 1_000_000)
		if !known || got != tc.want {
			t.Errorf("UsageCost(m, %s, 1M, 1M) = %v, %v; want %v, true", tc.kind, got, known, tc.want)
		}
	}
	if _, known := tab.UsageCost("unknown", "chat-batch", 1, 1); known {
		t.Error("an unknown model's price is known")
	}
}
