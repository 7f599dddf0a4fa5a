"""Tokenizers and text encoders for the tiny builds, made locally (no hub).

diffusers' pipeline tests load ``hf-internal-testing/tiny-random-t5`` / ``-clip`` from the hub; here
they are rebuilt: the encoders from the same small sizes (d_model 32, d_ff 37, 4 heads, 5 layers for
T5/umT5), the tokenizers from :data:`_WORDS` (about 970 common English words, each one token) plus
single-character pieces, so ASCII prompts never hit ``<unk>``. They are made through the very
classes the real checkpoints use (``T5Tokenizer`` -- the fast class in transformers 5 -- and
``CLIPTokenizer``), so ``save_pretrained`` / ``from_pretrained`` restore them exactly and
``HF_HUB_OFFLINE=1`` loading needs no network. The cost benchmark's full-size builds
(``benchmarks/full_builds.py``) use the same tokenizers: cost does not depend on the vocabulary.

transformers/tokenizers are imported inside the functions: importing this module is cheap.
"""

from __future__ import annotations

import string

# Tokenizer vocabulary: common English words (prompt words, Tiny-ImageNet-like nouns, motion verbs,
# camera terms), in rough frequency order. Each word is one token; anything else falls back to
# single characters. Changing this list changes the tiny models (vocab size, ids).
_WORDS = """
a an the this that these those some any each every all both no not and or but if then than so as of to in on at
by for from with without into onto over under above below behind beside between near far through across along
around up down out off away back again still just only very too more most less much many few several other
another such same own is are was were be been being am has have had do does did can could will would may might
shall should must i you he she it we they me him her us them my your his its our their mine yours who whom whose
what which where when why how there here now today night day morning evening one two three four five six seven
eight nine ten hundred thousand first second third last next half single double man woman men women person
people boy girl child children baby kid kids family father mother son daughter brother sister friend friends
couple crowd group team player players worker workers doctor nurse teacher student soldier police officer chef
farmer driver pilot dancer singer musician artist king queen prince princess knight robot alien astronaut cowboy
fisherman hunter head face eye eyes ear ears nose mouth lips teeth tongue hair beard neck shoulder shoulders arm
arms hand hands finger fingers leg legs foot feet knee body skin smile tears animal animals dog dogs puppy cat
cats kitten horse horses cow cows pig pigs sheep goat chicken duck goose bird birds eagle hawk owl parrot penguin
swan pigeon crow fish goldfish shark whale dolphin seal octopus jellyfish crab lobster snail turtle frog toad
lizard snake alligator crocodile insect bee bees butterfly moth ant ants spider fly dragonfly ladybug beetle
grasshopper cockroach scorpion worm mouse mice rat rabbit squirrel chipmunk hamster deer elk moose bear bears
polar panda koala monkey ape gorilla chimpanzee baboon orangutan lion lions tiger tigers leopard cheetah jaguar
wolf fox coyote zebra giraffe elephant elephants rhino hippo camel llama alpaca kangaroo bison ox buffalo boar bat
tree trees forest woods jungle grass flower flowers rose leaf leaves branch plant plants garden field fields farm
meadow mountain mountains hill hills valley cliff rock rocks stone stones sand desert beach coast shore ocean sea
wave waves river lake pond stream waterfall island cave volcano glacier ice snow rain storm cloud clouds sky sun
sunlight sunset sunrise moon star stars wind fog mist lightning thunder rainbow water fire smoke flame flames dust
mud earth world nature landscape horizon city town village street streets road roads highway bridge tunnel
building buildings house houses home room kitchen bedroom bathroom office school church temple castle tower
palace wall walls door doors window windows roof floor stairs hall hallway corridor library museum shop store
market restaurant cafe bar hotel hospital station airport park playground stadium arena theater factory
warehouse barn tent camp harbor port dock pier ship car cars truck trucks bus train trains tram bicycle bike
motorcycle scooter boat boats ships yacht canoe kayak airplane plane jet helicopter rocket spaceship submarine
tractor taxi ambulance wheel wheels engine table chair chairs sofa couch bed desk lamp light lights candle clock
mirror picture painting book books paper pen pencil phone computer laptop screen television camera guitar piano
drum drums violin ball balloon toy toys box bag basket bottle cup glass bowl plate knife fork spoon pot pan food
bread cake pizza burger sandwich apple apples banana orange lemon strawberry grape fruit vegetable carrot tomato
potato corn rice soup meat egg eggs cheese milk coffee tea wine beer cream chocolate candy shirt dress coat jacket
hat cap helmet shoes boots glasses mask scarf gloves uniform suit tie necklace ring watch umbrella sword shield
gun bow arrow flag sign key rope chain net tool hammer red yellow green blue purple pink brown black white gray
grey golden silver dark bright colorful pale big small large tiny huge giant little tall short long wide narrow
thick thin heavy fat round square flat deep shallow high low old young new ancient modern fresh clean dirty wet
dry hot cold warm cool soft hard smooth rough sharp quiet loud fast slow quick calm wild gentle strong weak
beautiful pretty ugly cute happy sad angry scared funny serious busy empty full open closed broken real fake
natural strange magical mysterious peaceful dramatic epic cinematic realistic detailed walk walks walking run
runs running jump jumps jumping flies flying swim swims swimming dance dances dancing sing sings singing play
plays playing sit sits sitting stand stands standing lie lying sleep sleeping eat eats eating drink drinking cook
cooking read reading write writing talk talking speak speaking laugh laughing cry crying look looks looking
watching see sees turn turns turning move moves moving go goes going come comes coming climb climbing fall falls
falling ride rides riding drive drives driving roll rolling spin spinning shake shaking waving throw throwing
catch catching kick kicking hit push pull lift carry carrying hold holding opening close closing fight fighting
chase chasing hunt hunting follow following hide hiding search wait waiting rest resting smiling blink breathe
grow growing melt melting burn burning glow glowing shine shining flow flowing float floating drift drifting sway
swaying bloom blooming explode exploding crash crashing race racing shot view closeup aerial angle zoom pan
panning tracking motion scene frame frames video clip image photo photograph background foreground center left
right top bottom side front middle edge corner inside outside time moment minute hour year summer winter spring
autumn season weather life love peace war game music sound voice song story dream idea color shape line pattern
texture style art design shadow shadows reflection surface space universe planet galaxy quality best good bad
worst blurry blur jittery distorted static noise artifacts inconsistent deformed
"""


def english_words() -> list[str]:
    """:data:`_WORDS` in order, each once."""
    return list(dict.fromkeys(_WORDS.split()))


def t5_tokenizer(model_max_length: int):
    """A T5-style (SentencePiece-Unigram) tokenizer over :func:`english_words`, built locally.

    Layout as T5's: ``<pad>`` 0, ``</s>`` 1, ``<unk>`` 2, then pieces. Each word is one ``▁word``
    piece (lower-case and Capitalised: T5 does not lower-case); printable ASCII characters are
    low-scoring pieces, so an unknown word splits into a known stem plus characters instead of
    ``<unk>``. Built with ``T5Tokenizer``'s own constructor, so ``from_pretrained`` rebuilds it identically.
    """
    from transformers import T5Tokenizer

    vocab: list[tuple[str, float]] = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    seen = {p for p, _ in vocab}

    def add(piece: str, score: float) -> None:
        if piece not in seen:
            seen.add(piece)
            vocab.append((piece, score))

    for i, word in enumerate(english_words()):
        # Unigram picks the segmentation with the highest total score: whole words (about -5)
        # always beat character spellings (-11 and -12 per character); earlier words win ties.
        add("▁" + word, -5.0 - 1e-3 * i)
        add("▁" + word.capitalize(), -6.0 - 1e-3 * i)
    for ch in string.digits + string.ascii_letters + string.punctuation:
        add("▁" + ch, -11.0)
        add(ch, -12.0)
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=model_max_length)


def _bpe(symbols: list[str], ranks: dict[tuple[str, str], int]) -> list[str]:
    """Byte-pair-encode one word: repeatedly merge the lowest-ranked adjacent pair (leftmost first)."""
    while len(symbols) > 1:
        best = min(((ranks[pair], i) for i, pair in enumerate(zip(symbols, symbols[1:])) if pair in ranks),
                   default=None)
        if best is None:
            break
        i = best[1]
        symbols = symbols[:i] + [symbols[i] + symbols[i + 1]] + symbols[i + 2:]
    return symbols


def clip_tokenizer(model_max_length: int = 77):
    """A CLIP-style byte-level BPE tokenizer whose merges spell each of :func:`english_words` as one token.

    Layout as CLIP's: the 256 byte symbols, the same with ``</w>``, the merged tokens, then
    ``<|startoftext|>`` and ``<|endoftext|>`` (also the pad token) last; any other text falls back to
    byte pieces, never unknown. Built with ``CLIPTokenizer``'s own constructor.

    The merges are made here, not by the ``tokenizers`` BPE trainer: the trainer breaks count ties
    differently in every process, which would change the tiny i2vgen model from run to run. Words
    are taken in order; while a word still encodes to several tokens, the merge of its first two is
    appended. Merges appended later rank after all earlier ones, so they never alter an earlier
    word's encoding (some earlier merge always applies until that word is one token).
    """
    from tokenizers import pre_tokenizers
    from transformers import CLIPTokenizer

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())  # ASCII letters map to themselves
    ranks: dict[tuple[str, str], int] = {}
    for word in english_words():
        symbols = list(word[:-1]) + [word[-1] + "</w>"]
        while len(symbols := _bpe(symbols, ranks)) > 1:
            ranks[(symbols[0], symbols[1])] = len(ranks)
    merges = list(ranks)  # dicts keep insertion order = rank order
    tokens = alphabet + [c + "</w>" for c in alphabet] + [a + b for a, b in merges]
    vocab = {t: i for i, t in enumerate(dict.fromkeys(tokens))}
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab[special] = len(vocab)
    # merges as (a, b) pairs: the tokenizers backend takes them (the annotation says strings only)
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=model_max_length)  # type: ignore[arg-type]


def t5_encoder(tokenizer, seed: int, umt5: bool = False):
    """hf-internal-testing/tiny-random-t5's sizes (d_model 32, d_ff 37, d_kv 8, 4 heads, 5 layers,
    8 buckets) with the real T5 v1.1 / umT5 gated-GELU feed-forward and the local vocabulary."""
    import torch
    from transformers import T5Config, T5EncoderModel, UMT5Config, UMT5EncoderModel

    kwargs = dict(vocab_size=len(tokenizer), d_model=32, d_ff=37, d_kv=8, num_heads=4, num_layers=5,
                  relative_attention_num_buckets=8, feed_forward_proj="gated-gelu", layer_norm_epsilon=1e-6,
                  pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                  decoder_start_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    if umt5:
        return UMT5EncoderModel(UMT5Config(**kwargs))
    return T5EncoderModel(T5Config(**kwargs))
