package openaitest

// openapi.yaml is trimmed from OpenAI's published description (a 3 MB file
// kept outside the repository at ../shared/openai/openapi.yaml on the machine
// that generated it; upstream: github.com/openai/openai-openapi). Regenerate
// with a different source path by running trimspec by hand.
//go:generate go run ./internal/trimspec -src ../../../shared/openai/openapi.yaml -out openapi.yaml
