package summarize

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// reasoningBlocks are the delimiters thinking models write their reasoning between, before the
// answer, as a server that does not separate the reasoning (vLLM without --reasoning-parser,
// llama-server with --reasoning-format none, older Ollama, some hosted APIs) hands them over in
// the content: "<think>" (DeepSeek-R1 and its distills, Qwen3, QwQ, Phi-4-reasoning …),
// "[THINK]" (Mistral's Magistral from 2507 and Ministral reasoning models: mistral-common's
// SpecialTokens.begin_think), "<reasoning>" (GRPO fine-tunes, which then write "<answer>…</answer>")
// "<|begin_of_thought|>" (Sky-T1, Bespoke-Stratos, OpenThinker, which then write
// "<|begin_of_solution|>…<|end_of_solution|>"), "<seed:think>" (ByteDance's Seed-OSS: vLLM's
// seedoss_reasoning_parser.py), "◁think▷" (Kimi K2 Thinking: SGLang's kimi_k2 parser) and
// Granite's "Here's my thought process:" … "Here's my response:" (vLLM's
// granite_reasoning_parser.py). gpt-oss's harmony channels are read apart (splitHarmony).
var reasoningBlocks = []struct{ open, close string }{
	{"<think>", "</think>"},
	{"[THINK]", "[/THINK]"},
	{"<reasoning>", "</reasoning>"},
	{"<|begin_of_thought|>", "<|end_of_thought|>"},
	{"<seed:think>", "</seed:think>"},
	{"◁think▷", "◁/think▷"},
	{"Here's my thought process:", "Here's my response:"},
	{"Here is my thought process:", "Here is my response:"},
}

// answerWrappers are the tags some of those models put around the answer after the reasoning.
var answerWrappers = []struct{ open, close string }{
	{"<answer>", "</answer>"},
	{"<|begin_of_solution|>", "<|end_of_solution|>"},
}

// Harmony, gpt-oss's response format: the reasoning is a message on the "analysis" channel and
// the answer one on the "final" channel,
// "<|channel|>analysis<|message|>…<|end|><|start|>assistant<|channel|>final<|message|>…"; a
// server that decodes without its special tokens (skip_special_tokens) leaves
// "analysis…assistantfinal…" (sgl-project/sglang#9190).
const (
	harmonyFinal     = "<|channel|>final<|message|>"
	harmonyFinalText = "assistantfinal"
)

// splitThinking returns the answer in content, a chat completion's message content, without
// the reasoning a thinking model wrote before it, and whether there was any. A server without a
// reasoning parser sends it as it was generated: an open delimiter (reasoningBlocks), the
// reasoning, the close delimiter, then the answer (Qwen3 also writes an empty
// "<think>\n\n</think>" with thinking off), or the reasoning, the close delimiter and the answer
// when the chat template opened the block (DeepSeek-R1's, since January 2025), or an unclosed
// block when the output stopped while the model was still thinking. The answer is what follows
// the first close delimiter, as vLLM's own parsers take it (vllm/reasoning/basic_parsers.py,
// deepseek_r1_reasoning_parser.py), without the tags some models wrap it in (answerWrappers);
// an unclosed block leaves no answer. gpt-oss's harmony channels give the final channel's
// message. Content without any of these is returned as it is. The end-of-turn tokens a server
// left at the end of the answer are not part of it (trimEndOfTurn).
func splitThinking(content string) (answer string, thought bool) {
	answer, thought = splitReasoning(content)
	return trimEndOfTurn(answer), thought
}

// splitReasoning is splitThinking before trimEndOfTurn.
func splitReasoning(content string) (answer string, thought bool) {
	if answer, ok := splitHarmony(content); ok {
		return answer, true
	}
	lead := strings.TrimSpace(content)
	for _, b := range reasoningBlocks {
		if _, after, ok := strings.Cut(content, b.close); ok {
			return unwrapAnswer(after), true
		}
		if strings.HasPrefix(lead, b.open) {
			return "", true
		}
	}
	return content, false
}

// splitHarmony returns the final channel's message of content written in gpt-oss's harmony
// format ("" when the output stopped before it), and whether content is in that format.
func splitHarmony(content string) (answer string, ok bool) {
	lead := strings.TrimSpace(content)
	if i := strings.LastIndex(content, harmonyFinal); i >= 0 {
		answer = content[i+len(harmonyFinal):]
	} else if i := strings.LastIndex(content, harmonyFinalText); i >= 0 && strings.HasPrefix(lead, "analysis") {
		answer = content[i+len(harmonyFinalText):]
	} else if strings.HasPrefix(lead, "<|channel|>") || strings.HasPrefix(lead, "<|start|>") || harmonyAnalysisText(lead) {
		return "", true
	} else {
		return "", false
	}
	// The message ends at <|end|>, or <|return|> when the server left the stop token in.
	for _, end := range []string{"<|end|>", "<|return|>"} {
		answer, _, _ = strings.Cut(answer, end)
	}
	return answer, true
}

// harmonyAnalysisText reports whether lead is an analysis message decoded without harmony's
// special tokens, with no final message after it: "analysis" against the reasoning's first
// word ("analysisWe need to…", "analysisThe user wants…"), which no answer starts with ("analysis
// of …" does not count).
func harmonyAnalysisText(lead string) bool {
	rest, ok := strings.CutPrefix(lead, "analysis")
	r, _ := utf8.DecodeRuneInString(rest)
	return ok && unicode.IsUpper(r)
}

// unwrapAnswer returns answer without the tags around it (answerWrappers), when it has them.
func unwrapAnswer(answer string) string {
	lead := strings.TrimSpace(answer)
	for _, w := range answerWrappers {
		if rest, ok := strings.CutPrefix(lead, w.open); ok {
			rest, _, _ = strings.Cut(rest, w.close)
			return rest
		}
	}
	return answer
}

// endOfTurnTokens are the tokens chat models end their turn (or the text) with, as a server that
// decodes with the special tokens leaves them in the content when its stop tokens are not the
// model's (a chat template of another model, skip_special_tokens off: vllm-project/vllm#4260,
// Aider-AI/aider#2588): Llama 3's <|eot_id|> and <|end_of_text|>, ChatML's <|im_end|> (Qwen, Yi,
// …), Phi-3's <|end|>, GPT-2's and many others' <|endoftext|>, Llama 2's and Mistral's </s>,
// Gemma's <end_of_turn> and <eos>, DeepSeek's <｜end▁of▁sentence｜> (full-width bars),
// DeepSeek Coder's <|EOT|>, Llama 4's <|eot|>, Llama 3.1's <|eom_id|> (a turn awaiting a tool's
// answer), Command R's <|END_OF_TURN_TOKEN|>, OpenChat's and Starling's <|end_of_turn|>.
var endOfTurnTokens = []string{"<|eot_id|>", "<|end_of_text|>", "<|im_end|>", "<|end|>", "<|endoftext|>", "</s>",
	"<end_of_turn>", "<eos>", "<｜end▁of▁sentence｜>", "<|EOT|>", "<|eot|>", "<|eom_id|>", "<|END_OF_TURN_TOKEN|>", "<|end_of_turn|>"}

// trimEndOfTurn returns answer up to the first end-of-turn token (endOfTurnTokens) that ends
// it: one at its end, or one after which another turn starts (a new line, or the next special
// token: vLLM's "… correct!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n…"),
// or one right after the sentence's final punctuation, whatever follows it on the line (a
// server that did not stop there: the next document, the user's next turn), without the white
// space before it. "… accuracy.<|eot_id|>" was stored as the TL;DR "… accuracy.<|eot_id|>.",
// and the other turn after it, refused as a second line, cleaned into one. A token inside a
// sentence is the sentence's (a TL;DR may name one).
func trimEndOfTurn(answer string) string {
	for i := 0; i < len(answer); i++ {
		if answer[i] != '<' {
			continue
		}
		for _, tok := range endOfTurnTokens {
			if !strings.HasPrefix(answer[i:], tok) {
				continue
			}
			rest := answer[i+len(tok):]
			next := strings.TrimLeft(rest, " \t")
			before := strings.TrimRightFunc(answer[:i], unicode.IsSpace)
			last, _ := utf8.DecodeLastRuneInString(before)
			if next == "" || strings.ContainsRune(".!?。！？", last) || next[0] == '\n' || next[0] == '\r' || strings.HasPrefix(next, "<|") || strings.HasPrefix(next, "<｜") ||
				strings.HasPrefix(next, "</s>") || strings.HasPrefix(next, "<s>") || strings.HasPrefix(next, "[INST]") ||
				strings.HasPrefix(next, "<start_of_turn>") || strings.HasPrefix(next, "<end_of_turn>") {
				return before
			}
		}
	}
	return answer
}
