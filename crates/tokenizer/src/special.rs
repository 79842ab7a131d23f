//! Special tokens recognised by their text, as llama-vocab.cpp `load` does
//! after reading the token types: EOT/EOM/FIM ids are auto-detected, the
//! tokens found are forced to CONTROL, and the end-of-generation set is built.

use crate::vocab::{attr, TextMap};

// Texts llama-vocab.cpp `load` recognises ("auto-detect special tokens by
// text"). Where llama.cpp takes the first match of an unordered_map walk, the
// first text in list order is taken here (for Qwen's EOT this gives
// <|im_end|>, as llama.cpp does).
const EOT_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];
const EOM_TEXTS: &[&str] = &["<|eom_id|>"];
const FIM_PRE_TEXTS: &[&str] = &[
    "<|fim_prefix|>",
    "<fim-prefix>",
    "<fim_prefix>",
    "<｜fim▁begin｜>",
    "<PRE>",
    "▁<PRE>",
    "<|code_prefix|>",
    "<|prefix|>",
];
const FIM_SUF_TEXTS: &[&str] = &[
    "<|fim_suffix|>",
    "<fim-suffix>",
    "<fim_suffix>",
    "<｜fim▁hole｜>",
    "<SUF>",
    "▁<SUF>",
    "<|code_suffix|>",
    "<|suffix|>",
];
const FIM_MID_TEXTS: &[&str] = &[
    "<|fim_middle|>",
    "<fim-middle>",
    "<fim_middle>",
    "<｜fim▁end｜>",
    "<MID>",
    "▁<MID>",
    "<|code_middle|>",
    "<|middle|>",
];
const FIM_PAD_TEXTS: &[&str] = &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"];
const FIM_REP_TEXTS: &[&str] = &[
    "<|fim_repo|>",
    "<|repo_name|>",
    "<fim-repo>",
    "<REPO>",
    "<reponame>",
];
const FIM_SEP_TEXTS: &[&str] = &["<|file_sep|>"];
/// llama-vocab.cpp: tokens that end generation, by text.
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];

/// First id whose text is in `list`, in list order.
fn find_by_text(text_to_id: &TextMap, list: &[&str]) -> Option<u32> {
    list.iter().find_map(|t| text_to_id.get(*t).copied())
}

/// Auto-detect special tokens; marks them CONTROL in `attrs` (llama-vocab.cpp:
/// "control-looking token ... its type will be overridden"). Returns the EOT
/// id (`eot_given`, else detected) and the sorted end-of-generation ids:
/// FIM pad/rep/sep, every token whose text is in the EOG list, eos, eot, eom.
pub(crate) fn detect(
    text_to_id: &TextMap,
    attrs: &mut [u8],
    eos: Option<u32>,
    eot_given: Option<u32>,
) -> (Option<u32>, Vec<u32>) {
    let mut force_control = |list: &[&str]| {
        let id = find_by_text(text_to_id, list);
        if let Some(id) = id {
            attrs[id as usize] |= attr::CONTROL;
        }
        id
    };
    let eot = match eot_given {
        Some(id) => Some(id),
        None => force_control(EOT_TEXTS),
    };
    let eom = force_control(EOM_TEXTS);
    force_control(FIM_PRE_TEXTS);
    force_control(FIM_SUF_TEXTS);
    force_control(FIM_MID_TEXTS);
    let fim_pad = force_control(FIM_PAD_TEXTS);
    let fim_rep = force_control(FIM_REP_TEXTS);
    let fim_sep = force_control(FIM_SEP_TEXTS);

    let mut eog: Vec<u32> = [fim_pad, fim_rep, fim_sep].into_iter().flatten().collect();
    for t in EOG_TEXTS {
        if let Some(&id) = text_to_id.get(*t) {
            attrs[id as usize] |= attr::CONTROL;
            eog.push(id);
        }
    }
    eog.extend([eos, eot, eom].into_iter().flatten());
    eog.sort_unstable();
    eog.dedup();
    (eot, eog)
}
