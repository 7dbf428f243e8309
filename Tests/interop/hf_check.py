#!/usr/bin/env python3
"""Checks SwiftGPT's files with the tools people read them with (a test tool, never a runtime dependency).

  hf_check.py export CASES.json    transformers/AutoTokenizer load each exported directory: logits and ids
  hf_check.py make-gpt2 SPEC.json  a random GPT-2 and GPT-2-format tokenizers made by transformers/tokenizers
  hf_check.py tensorboard RUN_DIR  tensorboard's event reader gives back metrics.jsonl's scalars and samples

Each prints one JSON object per line with the measured differences and exits 1 on the first failure.
"""
import json
import os
import sys

import numpy as np


def fail(message):
    print("FAIL: " + message, flush=True)
    sys.exit(1)


def relative_difference(ours, theirs):
    return float(np.max(np.abs(ours - theirs)) / max(1e-30, float(np.max(np.abs(theirs)))))


# MARK: - export


def check_export(cases_path):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cases = json.load(open(cases_path))
    for case in cases:
        directory = case["dir"]
        model = AutoModelForCausalLM.from_pretrained(directory, local_files_only=True).float().eval()
        inputs = torch.tensor(case["inputs"], dtype=torch.long)
        with torch.no_grad():
            theirs = model(inputs).logits.numpy()
        ours = np.fromfile(case["logits"], dtype="<f4").reshape(theirs.shape)
        rel = relative_difference(ours, theirs)
        tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
        for text, ids in zip(case["texts"], case["ids"]):
            encoded = tokenizer(text)
            if "token_type_ids" in encoded:  # GPT-2 would add them as token embeddings
                fail(f"{directory}: AutoTokenizer returns token_type_ids")
            got = encoded["input_ids"]
            if got != ids:
                first = next((i for i, (a, b) in enumerate(zip(got, ids)) if a != b), min(len(got), len(ids)))
                fail(f"{directory}: AutoTokenizer ids differ from ours at {first}: {got[first:first + 8]} vs {ids[first:first + 8]}")
            if tokenizer.decode(got) != text:
                fail(f"{directory}: AutoTokenizer does not decode its ids back to the text")
        full = load_file(os.path.join(directory, "model.safetensors"))
        for other in case.get("reduced", []):
            reduced = load_file(os.path.join(other["dir"], "model.safetensors"))
            dtype = {"bf16": torch.bfloat16, "f16": torch.float16}[other["dtype"]]
            if sorted(reduced) != sorted(full):
                fail(f"{other['dir']}: tensors {sorted(reduced)} differ from the f32 export's {sorted(full)}")
            for name, tensor in full.items():
                if not torch.equal(reduced[name].view(torch.int16), tensor.to(dtype).view(torch.int16)):
                    fail(f"{other['dir']}: {name} is not torch's {other['dtype']} rounding of the f32 export")
        if "architecture" in case and (model.config.architectures != [case["architecture"]]
                                       or type(model).__name__ != case["architecture"]):
            fail(f"{directory}: transformers made a {type(model).__name__}, not a {case['architecture']}")
        if "greedy" in case:  # gpt sample --temperature 0 against generate(do_sample=False)
            greedy = case["greedy"]
            prompt = tokenizer(greedy["prompt"], return_tensors="pt")["input_ids"]
            with torch.no_grad():
                out = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=greedy["new_tokens"],
                                     do_sample=False, pad_token_id=0)
            text = tokenizer.decode(out[0])
            if text != greedy["text"]:
                fail(f"{directory}: greedy generate gives {text!r}, gpt sample {greedy['text']!r}")
        print(json.dumps({"dir": directory, "logits_max_relative_difference": rel,
                          "logits_max_abs_difference": float(np.max(np.abs(ours - theirs))),
                          "texts": len(case["texts"]), "architecture": model.config.architectures,
                          "greedy_tokens": case["greedy"]["new_tokens"] if "greedy" in case else 0}), flush=True)
        if not rel <= case.get("tolerance", 1e-4):
            fail(f"{directory}: logits differ by {rel:.3g} relative")


# MARK: - make-gpt2


def bytes_to_unicode():
    """GPT-2's table (openai/gpt-2 encoder.py): byte -> the character vocab.json spells it with, in GPT-2's order."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def gpt2_order_tokenizer(text, vocab_size):
    """A byte-level BPE trained by `tokenizers`, renumbered as GPT-2 numbers its vocabulary:
    the bytes in bytes_to_unicode() order, the merges in order, <|endoftext|> last."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    trained = Tokenizer(models.BPE())
    trained.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    trained.train_from_iterator([text], trainer=trainer)
    model = json.loads(trained.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    vocab = {c: i for i, c in enumerate(bytes_to_unicode().values())}
    for left, right in merges:
        vocab.setdefault(left + right, len(vocab))
    vocab["<|endoftext|>"] = len(vocab)
    ordered = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    ordered.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    ordered.decoder = decoders.ByteLevel()
    ordered.add_special_tokens(["<|endoftext|>"])
    return trained, ordered


def make_gpt2(spec_path):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast
    from tokenizers import decoders

    spec = json.load(open(spec_path))
    torch.manual_seed(0)
    trained, ordered = gpt2_order_tokenizer(spec["text"], spec["vocab_size"])
    trained.decoder = decoders.ByteLevel()
    results = []
    for variant in spec["variants"]:
        directory = variant["dir"]
        tokenizer = ordered if variant["order"] == "gpt2" else trained
        config = GPT2Config(vocab_size=tokenizer.get_vocab_size(), n_positions=spec["block_size"], n_embd=spec["n_embd"],
                            n_layer=spec["n_layer"], n_head=spec["n_head"], tie_word_embeddings=variant["tied"],
                            bos_token_id=tokenizer.token_to_id("<|endoftext|>"),
                            eos_token_id=tokenizer.token_to_id("<|endoftext|>"))
        model = GPT2LMHeadModel(config).eval()
        with torch.no_grad():  # every tensor away from its initial value (biases, LayerNorm), as after training
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.05)
        model.save_pretrained(directory)
        if variant.get("openai_names"):  # as openai-community/gpt2's file: no "transformer." prefix, mask buffers
            from safetensors.torch import load_file, save_file
            path = os.path.join(directory, "model.safetensors")
            tensors = {k.removeprefix("transformer."): v for k, v in load_file(path).items()}
            mask = torch.tril(torch.ones(spec["block_size"], spec["block_size"])).view(1, 1, spec["block_size"], -1)
            for layer in range(spec["n_layer"]):
                tensors[f"h.{layer}.attn.bias"] = mask.clone()
            save_file(tensors, path, metadata={"format": "pt"})
        fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<|endoftext|>", eos_token="<|endoftext|>")
        fast.save_pretrained(directory)
        if variant["order"] == "gpt2":  # GPT-2's own files as well (openai-community/gpt2 has them); gpt import prefers them
            model_json = json.loads(tokenizer.to_str())["model"]
            json.dump(tokenizer.get_vocab(), open(os.path.join(directory, "vocab.json"), "w"), ensure_ascii=False)
            with open(os.path.join(directory, "merges.txt"), "w") as f:
                f.write("#version: 0.2\n")
                for m in model_json["merges"]:
                    f.write((m if isinstance(m, str) else " ".join(m)) + "\n")
        ids = [tokenizer.encode(t).ids for t in spec["texts"]]
        T = min(spec["block_size"], *map(len, ids))
        inputs = torch.tensor([row[:T] for row in ids])
        with torch.no_grad():
            model(inputs).logits.numpy().astype("<f4").tofile(os.path.join(directory, "expected_logits.f32"))
        json.dump({"ids": ids, "inputs": inputs.tolist()}, open(os.path.join(directory, "expected.json"), "w"))
        results.append({"dir": directory, "vocab": config.vocab_size, "files": sorted(os.listdir(directory))})
    print(json.dumps(results), flush=True)


# MARK: - tensorboard


def check_tensorboard(run_dir):
    from tensorboard.backend.event_processing import event_accumulator

    acc = event_accumulator.EventAccumulator(run_dir, size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    records = [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl")) if line.strip()]
    fields = {"train": {"loss": "train/loss", "lr": "train/lr", "grad_norm": "train/grad_norm",
                        "tokens_per_s": "train/tokens_per_s", "sgemm_ratio": "train/sgemm_ratio"},
              "eval": {"train_loss": "eval/train_loss", "val_loss": "eval/val_loss"}}
    # A task's accuracies (accuracy, accuracy_digits_N, accuracy_<operator>), under the same names.
    for key in sorted({k for r in records if r["event"] == "eval" for k in r if k.startswith("accuracy")}):
        fields["eval"][key] = "eval/" + key
    compared = 0
    for event, names in fields.items():
        for field, tag in names.items():
            expected = [(r["step"], float(np.float32(r[field]))) for r in records if r["event"] == event and field in r]
            got = [(s.step, s.value) for s in acc.Scalars(tag)]
            if got != expected:
                fail(f"{tag}: tensorboard reads {got[:6]}..., metrics.jsonl has {expected[:6]}...")
            compared += len(got)
    samples = [(r["step"], r["text"]) for r in records if r["event"] == "sample"]
    texts = acc.Tensors("sample") if "sample" in acc.Tags()["tensors"] else []
    got = [(t.step, t.tensor_proto.string_val[0].decode()) for t in texts]
    if got != samples:
        fail(f"samples: tensorboard reads {len(got)} at steps {[s for s, _ in got]}, metrics.jsonl has {[s for s, _ in samples]}")
    files = sorted(f for f in os.listdir(run_dir) if f.startswith("events.out.tfevents."))
    print(json.dumps({"event_files": len(files), "scalars_compared": compared, "samples": len(samples),
                      "tags": sorted(acc.Tags()["scalars"]),
                      "steps": sorted({s.step for s in acc.Scalars("train/loss")})}), flush=True)


if __name__ == "__main__":
    commands = {"export": check_export, "make-gpt2": make_gpt2, "tensorboard": check_tensorboard}
    if len(sys.argv) != 3 or sys.argv[1] not in commands:
        fail("usage: hf_check.py export CASES.json | make-gpt2 SPEC.json | tensorboard RUN_DIR")
    commands[sys.argv[1]](sys.argv[2])
