#!/usr/bin/env python3
"""Write deterministic synthetic passages for the encode benchmark.

    python3 bench/make_bench_texts.py OUT.jsonl [--n 512] [--seed 0]

One JSON object per line: {"_id": "...", "title": "...", "text": "..."} (BEIR corpus
style). Passages are built from a fixed English vocabulary with a seeded RNG, so the
same arguments always give a byte-identical file. Body lengths vary uniformly between
--min-words and --max-words words (default 20..150); titles have 2..6 words.
Only the Python standard library is needed.
"""
import argparse
import json
import random

# Fixed vocabulary (do not reorder: the output depends on it).
WORDS = """
the a an of to in for on with by from at as into over under about between through during
before after above below across along around against among within without toward upon
is are was were be been being has have had do does did can could will would should may might
must shall and or but nor so yet because although while when where which who whom whose that
this these those it its they them their we our you your he she his her one two three four five
six seven eight nine ten hundred thousand million first second third last next many few several
most more less some any each every all both either neither other another such same different
new old large small long short high low early late young great good bad best better major minor
river mountain valley ocean island forest desert city village country region province state
nation capital border coast lake bridge road railway station harbor airport castle church temple
museum library school university college hospital factory market farm garden park stadium theater
king queen emperor president minister general soldier army navy war battle treaty empire kingdom
republic government parliament council court law election party policy economy trade industry
company bank money price tax market labor worker farmer merchant engineer scientist doctor teacher
student artist writer poet painter composer musician singer actor director author inventor
book novel poem song album film series play painting statue building tower wall gate house
water fire earth air stone iron gold silver copper steel wood glass paper cloth salt sugar wheat
rice corn cotton coffee tea wine bread meat fish bird horse dog cat tree flower leaf root seed
sun moon star planet sky cloud rain snow wind storm season winter spring summer autumn year month
week day night morning evening hour century decade history culture language religion science art
music theory method system process structure function energy power light heat sound wave field
force mass motion speed distance time space number value measure data model network computer
software program code machine engine vehicle car train ship plane rocket satellite signal device
cell gene protein disease treatment medicine health body brain heart blood bone muscle skin
species animal plant insect population family group community society people person child woman
man leader member founder owner team club league season match game player coach record title
born died founded built named known called located situated established developed discovered
invented published released written recorded produced designed described considered became
remained served led won lost joined formed moved returned began ended continued increased
reduced changed replaced destroyed restored opened closed included contained covered reached
north south east west northern southern eastern western central upper lower inner outer
ancient medieval modern contemporary traditional popular famous important significant common
rare local national international public private official natural human social political
economic cultural military religious scientific technical industrial agricultural urban rural
""".split()

PUNCT_END = [".", ".", ".", ".", "!", "?"]


def make_sentence(rng, n):
    words = [rng.choice(WORDS) for _ in range(n)]
    words[0] = words[0].capitalize()
    out = []
    for i, w in enumerate(words):
        out.append(w)
        if 2 < i < n - 2 and rng.random() < 0.06:
            out[-1] = w + ","
    return " ".join(out) + rng.choice(PUNCT_END)


def make_passage(rng, n_words):
    sentences = []
    left = n_words
    while left > 0:
        k = min(left, rng.randint(5, 22))
        if left - k < 3:  # avoid a dangling 1-2 word sentence
            k = left
        sentences.append(make_sentence(rng, k))
        left -= k
    # Sprinkle a few numbers / years to exercise digit tokenisation.
    text = " ".join(sentences)
    if rng.random() < 0.5:
        text += f" In {rng.randint(1200, 2024)} it had {rng.randint(2, 99999)} residents."
    return text


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="output .jsonl path")
    ap.add_argument("--n", type=int, default=512, help="number of passages (default 512)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--min-words", type=int, default=20)
    ap.add_argument("--max-words", type=int, default=150)
    args = ap.parse_args()

    rng = random.Random(args.seed)
    with open(args.out, "w", encoding="utf-8") as f:
        for i in range(args.n):
            title_len = rng.randint(2, 6)
            title = " ".join(rng.choice(WORDS).capitalize() for _ in range(title_len))
            text = make_passage(rng, rng.randint(args.min_words, args.max_words))
            f.write(json.dumps({"_id": f"doc{i}", "title": title, "text": text}) + "\n")
    print(f"wrote {args.n} passages to {args.out}")


if __name__ == "__main__":
    main()
