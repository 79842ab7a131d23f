//! `shohin chat`: a REPL over the model's chat template, keeping the
//! conversation in the KV cache (only the new turn is evaluated).

use crate::args::ChatArgs;
use crate::load;
use crate::run::summary;
use anyhow::Result;
use shohin_chat::{ChatTemplate, Message, RenderOptions};
use shohin_engine::generate::{GenParams, Generator};
use shohin_engine::session::Session;
use shohin_engine::speculative::Speculator;
use shohin_tokenizer::Tokenizer;
use std::io::{BufRead, IsTerminal, Write};

pub fn chat(a: ChatArgs) -> Result<()> {
    let max = load::max_tokens(a.n_predict)?;
    let keep = a.shift.keep()?;
    // One seed for the conversation: each turn continues the same stream.
    let mut params = load::gen_params(&a.sampling, load::seed(&a.sampling), max)?;
    let grammar = crate::grammar::spec(&a.grammar)?;
    let l = load::load(&a.model)?;
    // Each answer starts the grammar afresh (the generator takes a copy).
    params.constraint = crate::grammar::compile(grammar.as_ref(), &l.tokenizer)?;
    let file = &l.model.file;
    let template = match shohin_engine::vocab::load_chat_template(file)? {
        Some(t) => t,
        None => {
            eprintln!("note: the model has no chat template; using ChatML");
            ChatTemplate::chatml()
        }
    };
    let draft = crate::spec::load_draft(&a.spec, &a.model, &l)?;
    let mut spec = crate::spec::speculator(&a.spec, &l, draft.as_ref())?;
    let tok = &l.tokenizer;
    let text_of = |id: Option<u32>| id.and_then(|i| tok.token_text(i)).unwrap_or("").to_string();
    let opts = RenderOptions {
        add_generation_prompt: true,
        enable_thinking: a.no_think.then_some(false),
        bos_token: text_of(tok.bos()),
        eos_token: text_of(tok.eos()),
        tools: None,
    };
    let mut messages = Vec::new();
    if let Some(sys) = &a.system {
        messages.push(Message::new("system", sys.clone()));
    }
    let mut s = Session::new(&l.model, l.n_ctx);
    s.set_context_shift(keep, tok.add_bos())?;
    let mut turn = |s: &mut Session<'_>, messages: &mut Vec<Message>, user: String| -> Result<()> {
        messages.push(Message::new("user", user));
        let text = template.render(messages, &opts)?;
        let ids = tok.encode(&text, true, true);
        // Reuse the cached prefix; evaluate only what the template added.
        // After context shifts the cache holds the conversation without
        // the dropped tokens: compare with all of it, and past the dropped
        // run keep rows only where the conversation still matches.
        let common = s
            .history()
            .iter()
            .zip(&ids)
            .take_while(|(a, b)| a == b)
            .count()
            .min(ids.len() - 1);
        let (k, d) = (s.n_keep(), s.n_discarded());
        let (at, from) = if d == 0 || common >= k + d {
            (common - d, common)
        } else {
            (common.min(k), common.min(k))
        };
        s.truncate(at);
        s.prompt(&ids[from..])?;
        let reply = generate(s, spec.as_mut(), tok, &params)?;
        // The next turn draws fresh numbers, not this turn's again.
        params.sampling.seed = params.sampling.seed.wrapping_add(1);
        messages.push(Message::new("assistant", reply));
        Ok(())
    };
    if let Some(p) = &a.prompt {
        turn(&mut s, &mut messages, p.clone())?;
        summary(&s.timings);
        if let Some(sp) = &spec {
            crate::spec::summary(&sp.stats);
        }
        return Ok(());
    }
    let stdin = std::io::stdin();
    let interactive = stdin.is_terminal();
    if interactive {
        eprintln!("shohin chat: type a message, /reset to start over, Ctrl-D to quit");
    }
    let mut lines = stdin.lock().lines();
    loop {
        if interactive {
            eprint!("> ");
            std::io::stderr().flush()?;
        }
        let Some(line) = lines.next() else { break };
        let line = line?;
        match line.trim() {
            "" => continue,
            "/reset" => {
                messages.retain(|m| m.role == "system");
                s.truncate(0);
                continue;
            }
            "/exit" | "/quit" => break,
            _ => turn(&mut s, &mut messages, line)?,
        }
    }
    summary(&s.timings);
    if let Some(sp) = &spec {
        crate::spec::summary(&sp.stats);
    }
    Ok(())
}

/// Sample until end of turn with the engine's generation step, streaming
/// to stdout; returns the reply text.
fn generate(
    s: &mut Session<'_>,
    mut spec: Option<&mut Speculator<'_>>,
    tok: &Tokenizer,
    params: &GenParams,
) -> Result<String> {
    let mut out = std::io::stdout().lock();
    let mut gen = Generator::new(params.clone())?;
    let mut reply = String::new();
    loop {
        let next = match spec.as_deref_mut() {
            Some(sp) => sp.next(s, &mut gen, tok)?,
            None => {
                // With --context-shift a full context is shifted here.
                let room = s.make_room()?;
                gen.next(tok, s.logits(), s.tokens(), room)?
            }
        };
        out.write_all(next.text.as_bytes())?;
        out.flush()?;
        reply.push_str(&next.text);
        if next.finish.is_some() {
            // Keep the end-of-turn token in the cache so the next turn's
            // template prefix matches what was evaluated.
            let room = s.tokens().len() < s.n_ctx();
            if tok.is_eog(next.id) && room {
                s.step(next.id)?;
            }
            break;
        }
        match spec.as_deref_mut() {
            Some(sp) => sp.commit(s, &mut gen, tok, next.id)?,
            None => {
                s.step(next.id)?;
            }
        }
    }
    writeln!(out)?;
    Ok(reply)
}
