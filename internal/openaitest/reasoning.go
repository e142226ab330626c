package openaitest

// Reasonings of Config.Reasoning: how the fake's model reasons before it answers, and how the
// server hands that reasoning over, each as a server that does not separate it (or a model's
// own API) delivers it.
const (
	// ReasoningThink: "<think>…</think>" then the answer in the content, as Qwen3 and
	// DeepSeek-R1 write it and vLLM without --reasoning-parser or llama-server with
	// --reasoning-format none deliver it (vllm/reasoning/deepseek_r1_reasoning_parser.py).
	ReasoningThink = "think"
	// ReasoningHarmony: gpt-oss's harmony channels in the content,
	// "<|channel|>analysis<|message|>…<|end|><|start|>assistant<|channel|>final<|message|>"
	// then the answer, as servers without a harmony parser deliver it (a GGUF on llama-server:
	// johnbean393/Sidekick#75; mlx-omni-server#79; kekzl/imp#768).
	ReasoningHarmony = "harmony"
	// ReasoningHarmonyText: the same with the special tokens dropped by the detokenizer
	// (skip_special_tokens), "analysis…assistantfinal" then the answer (sgl-project/sglang#9190,
	// thinking-machines-lab/tinker-cookbook#239).
	ReasoningHarmonyText = "harmony-text"
	// ReasoningMagistral: "[THINK]…[/THINK]" then the answer, Mistral's Magistral (2507 on)
	// and Ministral reasoning models on a server without a Mistral reasoning parser
	// (mistral-common SpecialTokens.begin_think/end_think; waybarrios/vllm-mlx#599).
	ReasoningMagistral = "magistral"
	// ReasoningMistralAPI: Mistral's own API for Magistral, whose content is an array of a
	// "thinking" part (itself an array of text parts) and a "text" part holding the answer
	// (spring-projects/spring-ai#5019, vercel/ai#8072). Not OpenAI's shape: not checked
	// against its description.
	ReasoningMistralAPI = "mistral-api"
	// ReasoningAnswerTags: "<reasoning>…</reasoning>" then "<answer>…</answer>", the format
	// GRPO fine-tunes are trained to write (willccbb's GRPO demo, Unsloth's GRPO notebooks).
	ReasoningAnswerTags = "reasoning-answer"
	// ReasoningThought: "<|begin_of_thought|>…<|end_of_thought|>" then
	// "<|begin_of_solution|>…<|end_of_solution|>", Sky-T1's, Bespoke-Stratos's and
	// OpenThinker's format (their system prompt asks for it).
	ReasoningThought = "thought"
	// ReasoningSeed: "<seed:think>…</seed:think>" then the answer, ByteDance's Seed-OSS
	// (vLLM's seedoss_reasoning_parser.py, when not asked for).
	ReasoningSeed = "seed"
	// ReasoningKimi: "◁think▷…◁/think▷" then the answer, Kimi K2 Thinking (SGLang's kimi_k2
	// reasoning parser, when not asked for).
	ReasoningKimi = "kimi"
	// ReasoningGranite: "Here's my thought process:" … "Here's my response:" then the answer,
	// IBM Granite with thinking on (vLLM's granite_reasoning_parser.py, when not asked for).
	ReasoningGranite = "granite"
	// ReasoningField: the content is the answer alone and the reasoning is in the message's
	// "reasoning" field, as vLLM with a reasoning parser (since vllm-project/vllm#27752, which
	// renamed "reasoning_content") and OpenRouter send it. Not OpenAI's shape: not checked.
	ReasoningField = "reasoning-field"
)

// reasonings lists the valid values of Config.Reasoning.
var reasonings = []string{ReasoningThink, ReasoningHarmony, ReasoningHarmonyText, ReasoningMagistral,
	ReasoningMistralAPI, ReasoningAnswerTags, ReasoningThought, ReasoningSeed, ReasoningKimi, ReasoningGranite, ReasoningField}

// validReasoning reports whether r is "" or one of reasonings.
func validReasoning(r string) bool {
	if r == "" {
		return true
	}
	for _, v := range reasonings {
		if r == v {
			return true
		}
	}
	return false
}

// thoughts is what the fake's model reasons before it gives answer: lines that read like a
// reasoning model's, the answer among them, and a sentence of its own that a client keeping
// the reasoning would take for a TL;DR.
func thoughts(answer string) string {
	return "The user wants a one-sentence TL;DR of the abstract.\n" +
		"The main claim is this: " + answer + "\n" +
		"I will state it in one sentence without a preamble."
}

// reasonedContent returns the message content of answer given with reasoning r (a string, or
// Mistral's parts), and the "reasoning" field's value ("" for none).
func reasonedContent(r, answer string) (content any, reasoning string) {
	t := thoughts(answer)
	switch r {
	case ReasoningThink:
		return "<think>\n" + t + "\n</think>\n\n" + answer, ""
	case ReasoningHarmony:
		return "<|channel|>analysis<|message|>" + t + "<|end|><|start|>assistant<|channel|>final<|message|>" + answer, ""
	case ReasoningHarmonyText:
		return "analysis" + t + "assistantfinal" + answer, ""
	case ReasoningMagistral:
		return "[THINK]" + t + "[/THINK]" + answer, ""
	case ReasoningMistralAPI:
		return []any{
			map[string]any{"type": "thinking", "thinking": []any{map[string]any{"type": "text", "text": t}}},
			map[string]any{"type": "text", "text": answer},
		}, ""
	case ReasoningAnswerTags:
		return "<reasoning>\n" + t + "\n</reasoning>\n<answer>\n" + answer + "\n</answer>", ""
	case ReasoningThought:
		return "<|begin_of_thought|>\n\n" + t + "\n\n<|end_of_thought|>\n\n<|begin_of_solution|>\n\n" + answer + "\n\n<|end_of_solution|>", ""
	case ReasoningSeed:
		return "<seed:think>" + t + "</seed:think>" + answer, ""
	case ReasoningKimi:
		return "◁think▷" + t + "◁/think▷" + answer, ""
	case ReasoningGranite:
		return "Here's my thought process:\n" + t + "\n\nHere's my response:\n" + answer, ""
	case ReasoningField:
		return answer, t
	}
	return answer, ""
}

// reasoningIsOpenAIShape reports whether answers with reasoning r have OpenAI's shape (a
// string content, no field of another server), so that they are checked against its
// description.
func reasoningIsOpenAIShape(r string) bool {
	return r != ReasoningMistralAPI && r != ReasoningField
}

// reasoningTokens estimates the tokens of answer's reasoning.
func reasoningTokens(answer string) int { return tokens(thoughts(answer)) }
