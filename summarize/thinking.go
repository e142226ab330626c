package summarize

import "strings"

// Think tags: a reasoning model (DeepSeek-R1 and its distills, Qwen3, QwQ, Phi-4-reasoning …)
// writes its reasoning between them before the answer.
const (
	thinkOpen  = "<think>"
	thinkClose = "</think>"
)

// splitThinking returns the answer in content, a chat completion's message content, without
// the reasoning a thinking model wrote before it, and whether there was any. A server without a
// reasoning parser (vLLM without --reasoning-parser, llama-server with --reasoning-format none,
// older Ollama, some hosted APIs) sends it as it was generated: "<think>…</think>" then the
// answer (Qwen3 also writes an empty "<think>\n\n</think>" with thinking off), or "…</think>"
// then the answer when the chat template opened the block (DeepSeek-R1's, since January 2025),
// or an unclosed "<think>…" when the output stopped while the model was still thinking. The
// answer is what follows the first "</think>", as vLLM's own parsers take it
// (vllm/reasoning/basic_parsers.py, deepseek_r1_reasoning_parser.py); an unclosed block leaves
// no answer. Content without think tags is returned as it is.
func splitThinking(content string) (answer string, thought bool) {
	if _, after, ok := strings.Cut(content, thinkClose); ok {
		return after, true
	}
	if strings.HasPrefix(strings.TrimSpace(content), thinkOpen) {
		return "", true
	}
	return content, false
}
