package pricing

import (
	"fmt"
	"strconv"
	"strings"
)

// Price is what a model costs, in US dollars per million tokens.
type Price struct {
	InputPerM  float64 // prompt (input) tokens
	OutputPerM float64 // completion (output) tokens; 0 for embedding models
}

// Table maps model names to their prices.
type Table map[string]Price

// Default returns OpenAI's list prices (standard tier) for the models paperpipe is most often
// pointed at, and 0 for paperpipe's built-in offline models. The caller owns the returned map.
func Default() Table {
	return Table{
		"gpt-4o-mini":                  {InputPerM: 0.15, OutputPerM: 0.60},
		"gpt-4o":                       {InputPerM: 2.50, OutputPerM: 10.00},
		"gpt-4.1-mini":                 {InputPerM: 0.40, OutputPerM: 1.60},
		"gpt-4.1-nano":                 {InputPerM: 0.10, OutputPerM: 0.40},
		"text-embedding-3-small":       {InputPerM: 0.02},
		"text-embedding-3-large":       {InputPerM: 0.13},
		"text-embedding-ada-002":       {InputPerM: 0.10},
		"paperpipe-offline-extractive": {},
		"paperpipe-offline-hash":       {},
		"paperpipe-offline-hash-v2":    {},
	}
}

// OfflinePrefix begins the name of every built-in offline model. They run in the process and
// cost nothing, including the fitted embedders, whose names end in a hash of their content
// (paperpipe-offline-tfidf-<hash>) and so cannot be listed in a table.
const OfflinePrefix = "paperpipe-offline-"

// Cost returns the price of inTok input and outTok output tokens of model, and whether the
// table knows the model. A built-in offline model (OfflinePrefix) the table does not name
// costs 0, known; any other unknown model costs 0 with known false.
func (t Table) Cost(model string, inTok, outTok int64) (usd float64, known bool) {
	p, ok := t[model]
	if !ok && strings.HasPrefix(model, OfflinePrefix) {
		p, ok = Price{}, true
	}
	if !ok {
		return 0, false
	}
	return (float64(inTok)*p.InputPerM + float64(outTok)*p.OutputPerM) / 1e6, true
}

// BatchSuffix ends the usage kinds of work done through OpenAI's Batch API ("chat-batch",
// "embedding-batch"), which is billed at half the price.
const BatchSuffix = "-batch"

// UsageCost is Cost for usage recorded under kind: half of it for the Batch API's kinds.
func (t Table) UsageCost(model, kind string, inTok, outTok int64) (usd float64, known bool) {
	usd, known = t.Cost(model, inTok, outTok)
	if strings.HasSuffix(kind, BatchSuffix) {
		usd /= 2
	}
	return usd, known
}

// Parse reads prices in the form of PAPERPIPE_PRICES — comma-separated "model=in/out" or
// "model=in" (embedding models: no output price), in US dollars per million tokens, such as
// "gpt-4o-mini=0.15/0.60,text-embedding-3-small=0.02" — and returns them merged over Default():
// a model named here replaces its default price. Spaces around items are ignored; an empty
// string gives Default(). Errors name the item that is wrong.
func Parse(s string) (Table, error) {
	t := Default()
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		model, price, ok := strings.Cut(item, "=")
		model = strings.TrimSpace(model)
		if !ok || model == "" {
			return nil, fmt.Errorf("prices: %q: want model=input/output (USD per 1M tokens)", item)
		}
		in, out, hasOut := strings.Cut(price, "/")
		p := Price{}
		var err error
		if p.InputPerM, err = parseUSD(in); err != nil {
			return nil, fmt.Errorf("prices: %q: input price: %w", item, err)
		}
		if hasOut {
			if p.OutputPerM, err = parseUSD(out); err != nil {
				return nil, fmt.Errorf("prices: %q: output price: %w", item, err)
			}
		}
		t[model] = p
	}
	return t, nil
}

func parseUSD(s string) (float64, error) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "$")
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	if v < 0 || v != v || v > 1e6 {
		return 0, fmt.Errorf("%v is not a price per million tokens", v)
	}
	return v, nil
}
