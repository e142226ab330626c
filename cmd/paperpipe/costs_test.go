package main

import (
	"testing"

	"github.com/paperpipe/paperpipe/internal/pricing"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
)

func TestModelCostsPriceEachKind(t *testing.T) {
	prices, err := pricing.Parse("m=1/2,n=1")
	if err != nil {
		t.Fatal(err)
	}
	rows := []store.UsageRow{
		{Usage: paper.Usage{Model: "m", Kind: "chat", Requests: 2, InputTokens: 1_000_000, OutputTokens: 1_000_000}},
		{Usage: paper.Usage{Model: "m", Kind: "chat-batch", Requests: 1, InputTokens: 1_000_000, OutputTokens: 1_000_000}},
		{Usage: paper.Usage{Model: "n", Kind: "embedding", Requests: 1, InputTokens: 2_000_000}},
		{Usage: paper.Usage{Model: "x", Kind: "chat", Requests: 1, InputTokens: 5}},
	}
	got := modelCosts(rows, prices)
	if len(got) != 3 {
		t.Fatalf("modelCosts = %+v, want 3 models", got)
	}
	// m: 3 $ synchronous + 1.5 $ through the Batch API.
	if m := got[0]; m.Model != "m" || m.Requests != 3 || m.USD != 4.5 || !m.PriceKnown {
		t.Errorf("m = %+v, want 3 requests, $4.50, known", m)
	}
	if n := got[1]; n.USD != 2 || !n.PriceKnown {
		t.Errorf("n = %+v, want $2, known", n)
	}
	if x := got[2]; x.PriceKnown {
		t.Errorf("x = %+v, want its price unknown", x)
	}
}
