// Package pricing estimates what API calls cost from the tokens the usage ledger records:
// prices in US dollars per million input and output tokens, per model, with current OpenAI
// list prices as defaults and a PAPERPIPE_PRICES-style override.
package pricing
