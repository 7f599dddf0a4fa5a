"""Local builds of four diffusers image-to-video pipelines: tiny random ones for tests, full-size ones for cost.

Nothing here touches the hub. Each family is one diffusers pipeline class:

=============  ===================================  ==============================================
family         pipeline                             default hub model (architecture source)
=============  ===================================  ==============================================
``cogvideox``  ``CogVideoXImageToVideoPipeline``    ``THUDM/CogVideoX-5b-I2V``
``ltx``        ``LTXImageToVideoPipeline``          ``Lightricks/LTX-Video`` (0.9.0, 2B)
``wan``        ``WanImageToVideoPipeline``          ``Wan-AI/Wan2.1-I2V-14B-480P-Diffusers``
``i2vgen``     ``I2VGenXLPipeline``                 ``ali-vilab/i2vgen-xl``
=============  ===================================  ==============================================

* :func:`tiny_pipeline` -- a tiny randomly initialised pipeline (CPU, fp32, well under a second a call),
  identical weights on every call: ``torch.manual_seed(seed)`` before each component, as diffusers'
  own pipeline tests do. Denoiser/VAE/image-encoder sizes are those tests' ``get_dummy_components``
  (``tests/pipelines/{cogvideo,ltx,wan}/...``, ``i2vgen_xl/test_i2vgenxl.py`` before its removal in
  diffusers#11879), with the changes listed in each builder so that the tiny model takes the *real*
  model's code paths and call rules (same latent compression ratios, scheduler, text length, image
  tokens). The tests' hub text encoders/tokenizers (``hf-internal-testing/tiny-random-t5`` / ``-clip``)
  are rebuilt locally: the encoders from the same small sizes (d_model 32, d_ff 37, 4 heads, 5 layers
  for T5/umT5; the test's CLIPTextConfig), the tokenizers from :data:`_WORDS` (about 970 common English
  words, each one token) plus single-character pieces, so ASCII prompts never hit ``<unk>``. They are
  made through the very classes the real checkpoints use (``T5Tokenizer`` -- the fast class in
  transformers 5 -- and ``CLIPTokenizer``), so ``save_pretrained`` / ``from_pretrained`` restore them
  exactly and ``HF_HUB_OFFLINE=1`` loading needs no network.
* :func:`full_pipeline` -- the real architecture with random weights, for cost benchmarking. Config
  sources (diffusers commit 58eb52c, scripts/ = its conversion scripts):

  - cogvideox: transformer = ``scripts/convert_cogvideox_to_diffusers.py`` (5B: 42 layers, 48 heads,
    RoPE, ``--i2v`` -> in_channels 32 and learned positional embeddings, version 1.0 -> 480x720x49);
    VAE = ``AutoencoderKLCogVideoX`` defaults with the 5B ``scaling_factor`` 0.7; scheduler =
    the script's ``CogVideoXDDIMScheduler`` (5B ``snr_shift_scale`` 1.0); text = T5-XXL
    (``google/t5-v1_1-xxl`` config.json), tokenizer length 226.
  - ltx: ``scripts/convert_ltx_to_diffusers.py`` ``get_transformer_config``/``get_vae_config('0.9.0')``
    and its 0.9.0 scheduler; text = T5-XXL, tokenizer length 128. The ``Lightricks/LTX-Video`` diffusers
    folders hold 0.9.0 (0.9.1's timestep-conditioned VAE was published as
    ``a-r-r-o-w/LTX-Video-0.9.1-diffusers``; its transformer is the same).
  - wan: ``scripts/convert_wan_to_diffusers.py`` ``Wan-I2V-14B-480p`` transformer config,
    ``AutoencoderKLWan()`` (the script's ``convert_vae``), UniPC with ``flow_shift`` 3.0, umT5-XXL
    (``google/umt5-xxl`` config.json), image encoder the ``laion/CLIP-ViT-H-14-laion2B-s32B-b79K``
    vision tower as ``CLIPVisionModel``: the pipeline's declared type and what the model card loads
    (the script saves it with the 1024-d projection, +1.3 M parameters Wan never uses: it reads the
    penultimate hidden states).
  - i2vgen: ``scripts/convert_i2vgen_to_diffusers.py``: ``I2VGenXLUNet(sample_size=32)`` defaults,
    the SD 2.1 VAE (``stabilityai/stable-diffusion-2-1`` vae/config.json), text and image towers of
    ``laion/CLIP-ViT-H-14-laion2B-s32B-b79K`` (config.json: text 1024 wide, 24 layers; vision 1280
    wide, 32 layers, patch 14), and the script's DDIM scheduler.

  The tokenizer is the local one (cost does not depend on the vocabulary); the text encoders keep
  the real vocabulary size, so parameter counts are the real ones.
* :data:`FAMILY_FACTS` -- model-card defaults and pipeline notes per family (the call rules gva runs
  are the generators' :class:`gva.generate.i2v.Family`); :data:`TINY_CALL` -- the smallest valid
  call for each tiny pipeline.

torch/diffusers/transformers/tokenizers are imported inside the functions: importing this module is cheap.
"""

from __future__ import annotations

import string
from typing import Any, Callable, Sequence

from gva.generate.pipelines import quiet_loading, torch_dtype

FAMILIES = ("cogvideox", "ltx", "wan", "i2vgen")

#: Per family, what the model cards and pipelines say beyond what gva's generators run on: the call
#: rules gva uses (pipeline, default model, frame rule, canvas multiple, guidance, frame-rate keyword,
#: fp32 components) are the families' :class:`gva.generate.i2v.Family`; these are the notes behind
#: them and the model cards' own defaults (``export_fps``: what the card writes the video at).
FAMILY_FACTS: dict[str, dict[str, Any]] = {
    "cogvideox": {
        "frames": "the pipeline asks for 4k+1, but the VAE decodes an even latent count T to 4T frames "
                  "(temporal upsampling splits off the first frame only when T is odd): 8k+1 is exact",
        "default_frames": 49,
        "canvas": "VAE 8 x patch 2 (the pipeline itself checks only % 8)",
        "resolution": "480x720 (HxW) only: learned positional embeddings fixed to 60x90 latents; the "
                      "transformer raises on any other size. Frame counts other than 49 silently swap the "
                      "learned table for sin-cos embeddings.",
        "steps": 50,
        "export_fps": 8,
        "max_sequence_length": 226,  # must equal the transformer's max_text_seq_length
        "notes": "model card also sets use_dynamic_cfg=True; batch size comes from the prompt list, "
                 "one video per prompt",
    },
    "ltx": {
        "frames": "latent frames (n - 1) // 8 + 1, decoded to 8 (T - 1) + 1",
        "default_frames": 161,
        "canvas": "VAE compression 32, patch 1; the pipeline raises otherwise",
        "resolution": "any multiple of 32; model card: 704x480 (WxH) i2v example, best below 720x1280 "
                      "and 257 frames",
        "steps": 50,
        "frame_rate": "default 25; scales the temporal RoPE",
        "export_fps": 24,
        "max_sequence_length": 128,
        "notes": "0.9.0 VAE: no decode_timestep/decode_noise_scale (0.9.1+ VAEs draw decode noise with "
                 "torch.randn(generator=...), which rejects a list of generators)",
    },
    "wan": {
        "frames": "other counts: a warning and num_frames // 4 * 4 + 1",
        "default_frames": 81,
        "canvas": "VAE 8 x patch 2; the pipeline rounds down with a warning",
        "resolution": "480P model: 480x832 (HxW) or 832x480, model card keeps the area near 480*832",
        "steps": 50,
        "export_fps": 16,
        "max_sequence_length": 512,  # hard-coded in the image cross-attention split: keep 512
        "notes": "one image per call: a list of images is refused, and a [B,3,H,W] tensor with B > 1 fails "
                 "(the pipeline repeats CLIP embeddings and image latents B times more: B*B rows); the "
                 "model card loads the VAE and image encoder in fp32; prompt cleaning needs the ftfy package",
    },
    "i2vgen": {
        "default_frames": 16,
        "canvas": "VAE 8; the UNet forwards upsample sizes for non-multiples of 64",
        "resolution": "pipeline default / model card 1280x704 (WxH)",
        "steps": 50,
        "target_fps": "default 16, an input of the UNet",
        "export_fps": 16,
        "max_sequence_length": 77,
        "notes": "deprecated in diffusers; image latents are sampled from the global torch RNG "
                 "(vae.encode(...).latent_dist.sample() without the generator); the default clip_skip=1 "
                 "fails with transformers 5 (no text_encoder.text_model): pass i2vgen_prompt_embeds()",
    },
}

#: The smallest valid call for each tiny pipeline (checked against the pipelines' own rules).
TINY_CALL: dict[str, dict[str, int]] = {
    "cogvideox": {"height": 16, "width": 16, "num_frames": 9},  # fixed by the learned positional table
    "ltx": {"height": 32, "width": 32, "num_frames": 9},
    "wan": {"height": 16, "width": 16, "num_frames": 5},
    "i2vgen": {"height": 8, "width": 8, "num_frames": 3},
}

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


def _check_family(family: str) -> None:
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")


# --- tokenizers --------------------------------------------------------------------------------

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
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=model_max_length)


# --- tiny builds -------------------------------------------------------------------------------

def _tiny_t5(tokenizer, seed: int, umt5: bool = False):
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


def _cogvideox_scheduler():
    from diffusers import CogVideoXDDIMScheduler

    # convert_cogvideox_to_diffusers.py, 5B: snr_shift_scale 1.0
    return CogVideoXDDIMScheduler(snr_shift_scale=1.0, beta_end=0.012, beta_schedule="scaled_linear",
                                  beta_start=0.00085, clip_sample=False, num_train_timesteps=1000,
                                  prediction_type="v_prediction", rescale_betas_zero_snr=True,
                                  set_alpha_to_one=True, timestep_spacing="trailing")


def _ltx_scheduler():
    from diffusers import FlowMatchEulerDiscreteScheduler

    # convert_ltx_to_diffusers.py, versions before 0.9.5
    return FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, base_shift=0.95, max_shift=2.05,
                                           base_image_seq_len=1024, max_image_seq_len=4096, shift_terminal=0.1)


def _wan_scheduler():
    from diffusers import UniPCMultistepScheduler

    # convert_wan_to_diffusers.py: flow_shift 3.0 for the 480P I2V model
    return UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                   num_train_timesteps=1000, flow_shift=3.0)


def _i2vgen_scheduler():
    from diffusers import DDIMScheduler

    # convert_i2vgen_to_diffusers.py (i2vgen_xl_train.yaml)
    return DDIMScheduler(beta_schedule="squaredcos_cap_v2", rescale_betas_zero_snr=True, set_alpha_to_one=True,
                         clip_sample=False, steps_offset=1, timestep_spacing="leading",
                         prediction_type="v_prediction")


def _tiny_cogvideox(seed: int):
    """Test config, except: max_text_seq_length 226 (the real one, so the default
    ``max_sequence_length`` works) and the real CogVideoX DDIM scheduler."""
    import torch
    from diffusers import AutoencoderKLCogVideoX, CogVideoXImageToVideoPipeline, CogVideoXTransformer3DModel

    torch.manual_seed(seed)
    transformer = CogVideoXTransformer3DModel(
        num_attention_heads=2, attention_head_dim=16, in_channels=8, out_channels=4, time_embed_dim=2,
        text_embed_dim=32, num_layers=1, sample_width=2, sample_height=2, sample_frames=9, patch_size=2,
        temporal_compression_ratio=4, max_text_seq_length=226, use_rotary_positional_embeddings=True,
        use_learned_positional_embeddings=True)  # learned table: 16x16 px only, like 480x720 for the 5B
    torch.manual_seed(seed)
    vae = AutoencoderKLCogVideoX(
        in_channels=3, out_channels=3, down_block_types=("CogVideoXDownBlock3D",) * 4,
        up_block_types=("CogVideoXUpBlock3D",) * 4, block_out_channels=(8, 8, 8, 8), latent_channels=4,
        layers_per_block=1, norm_num_groups=2, temporal_compression_ratio=4)
    tokenizer = t5_tokenizer(226)
    text_encoder = _tiny_t5(tokenizer, seed)
    return CogVideoXImageToVideoPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae,
                                         transformer=transformer, scheduler=_cogvideox_scheduler())


def _tiny_ltx(seed: int):
    """Test transformer; the test VAE's channels but the real 0.9.0 compression (patch 4 and three
    spatio-temporal stages: 32x spatial, 8x temporal, so frames follow 8k+1 as in the real model)."""
    import torch
    from diffusers import AutoencoderKLLTXVideo, LTXImageToVideoPipeline, LTXVideoTransformer3DModel

    torch.manual_seed(seed)
    transformer = LTXVideoTransformer3DModel(
        in_channels=8, out_channels=8, patch_size=1, patch_size_t=1, num_attention_heads=4, attention_head_dim=8,
        cross_attention_dim=32, num_layers=1, caption_channels=32)
    torch.manual_seed(seed)
    vae = AutoencoderKLLTXVideo(
        in_channels=3, out_channels=3, latent_channels=8, block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8), layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1), spatio_temporal_scaling=(True, True, True, False),
        decoder_spatio_temporal_scaling=(True, True, True, False), decoder_inject_noise=(False,) * 5,
        upsample_residual=(False,) * 4, upsample_factor=(1,) * 4, timestep_conditioning=False,
        patch_size=4, patch_size_t=1, encoder_causal=True, decoder_causal=False)
    tokenizer = t5_tokenizer(128)
    text_encoder = _tiny_t5(tokenizer, seed)
    return LTXImageToVideoPipeline(scheduler=_ltx_scheduler(), vae=vae, text_encoder=text_encoder,
                                   tokenizer=tokenizer, transformer=transformer)


def _tiny_wan(seed: int):
    """Test config, except: ``added_kv_proj_dim`` set (the real I2V transformer's separate image
    cross-attention, which needs the real 512-token text length), a CLIP tower giving the real
    257 image tokens (32 px, patch 2), a umT5 encoder and the real UniPC scheduler."""
    import torch
    from diffusers import AutoencoderKLWan, WanImageToVideoPipeline, WanTransformer3DModel
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(seed)
    vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True])
    tokenizer = t5_tokenizer(512)
    text_encoder = _tiny_t5(tokenizer, seed, umt5=True)
    torch.manual_seed(seed)
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=36, out_channels=16,
        text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32, image_dim=4, added_kv_proj_dim=24)
    torch.manual_seed(seed)
    image_encoder = CLIPVisionModel(CLIPVisionConfig(
        hidden_size=4, num_hidden_layers=2, num_attention_heads=2, image_size=32, intermediate_size=16, patch_size=2))
    image_processor = CLIPImageProcessor(crop_size=32, size=32)
    return WanImageToVideoPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae,
                                   scheduler=_wan_scheduler(), image_processor=image_processor,
                                   image_encoder=image_encoder, transformer=transformer)


def _tiny_i2vgen(seed: int):
    """Test config, except: a four-stage VAE (the real 8x compression instead of the test's 1x) and
    the real DDIM scheduler."""
    import torch
    from diffusers import AutoencoderKL, I2VGenXLPipeline, I2VGenXLUNet
    from transformers import (CLIPImageProcessor, CLIPTextConfig, CLIPTextModel, CLIPVisionConfig,
                              CLIPVisionModelWithProjection)

    torch.manual_seed(seed)
    unet = I2VGenXLUNet(
        block_out_channels=(4, 8), layers_per_block=1, sample_size=32, in_channels=4, out_channels=4,
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"), up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        cross_attention_dim=4, attention_head_dim=4, num_attention_heads=None, norm_num_groups=2)
    torch.manual_seed(seed)
    vae = AutoencoderKL(
        block_out_channels=(8, 8, 8, 8), in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=4, sample_size=32, norm_num_groups=2)
    tokenizer = clip_tokenizer(77)
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        hidden_size=4, intermediate_size=16, layer_norm_eps=1e-05, num_attention_heads=2, num_hidden_layers=2,
        vocab_size=len(tokenizer), hidden_act="gelu", projection_dim=32))
    torch.manual_seed(seed)
    image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=4, projection_dim=4, num_hidden_layers=2, num_attention_heads=2, image_size=32,
        intermediate_size=16, patch_size=1))
    feature_extractor = CLIPImageProcessor(crop_size=32, size=32)
    return I2VGenXLPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, image_encoder=image_encoder,
                            feature_extractor=feature_extractor, unet=unet, scheduler=_i2vgen_scheduler())


_TINY = {"cogvideox": _tiny_cogvideox, "ltx": _tiny_ltx, "wan": _tiny_wan, "i2vgen": _tiny_i2vgen}
_SCHEDULERS = {"cogvideox": _cogvideox_scheduler, "ltx": _ltx_scheduler, "wan": _wan_scheduler,
               "i2vgen": _i2vgen_scheduler}


def tiny_pipeline(family: str, seed: int = 0):
    """Tiny random pipeline of ``family`` on CPU in fp32; the same weights on every call.

    The pipeline is returned as loaded back from a ``save_pretrained`` directory, so it computes
    exactly what any later ``save_pretrained`` -> ``from_pretrained`` copy computes. A freshly built
    model does not: ``from_pretrained`` leaves the weights as views into the memory-mapped safetensors
    file, at offsets that are not 64-byte aligned, and CPU kernels (GEMM, conv) then take other
    vectorisation paths -- outputs differ by ~1e-7 from the same weights in fresh, aligned memory.
    (Loading also puts every module in eval mode; a constructed transformers model starts in
    training mode with dropout on.) Call it with :data:`TINY_CALL` sizes or larger valid ones.
    """
    import tempfile

    _check_family(family)
    pipe = _TINY[family](seed)
    with tempfile.TemporaryDirectory() as path, quiet_loading():
        pipe.save_pretrained(path)
        # the memory maps keep the deleted files readable (POSIX)
        return type(pipe).from_pretrained(path, local_files_only=True).to("cpu")


# --- full-size builds --------------------------------------------------------------------------

def _t5_xxl(num_layers: int | None, umt5: bool, tokenizer):
    """T5 v1.1 XXL encoder (google/t5-v1_1-xxl) or umT5-XXL (google/umt5-xxl): 4096 wide, 24 layers."""
    from transformers import T5Config, T5EncoderModel, UMT5Config, UMT5EncoderModel

    kwargs = dict(vocab_size=256384 if umt5 else 32128, d_model=4096, d_ff=10240, d_kv=64, num_heads=64,
                  num_layers=num_layers or 24, feed_forward_proj="gated-gelu", relative_attention_num_buckets=32,
                  relative_attention_max_distance=128, layer_norm_epsilon=1e-6, tie_word_embeddings=False,
                  pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                  decoder_start_token_id=tokenizer.pad_token_id)
    if umt5:
        return UMT5EncoderModel(UMT5Config(scalable_attention=True, **kwargs))
    return T5EncoderModel(T5Config(**kwargs))


def _clip_vit_h_vision(projection: bool):
    """laion/CLIP-ViT-H-14-laion2B-s32B-b79K vision tower, with its 1024-d projection or without."""
    from transformers import CLIPVisionConfig, CLIPVisionModel, CLIPVisionModelWithProjection

    config = CLIPVisionConfig(hidden_size=1280, intermediate_size=5120, num_attention_heads=16,
                              num_hidden_layers=32, patch_size=14, image_size=224, projection_dim=1024,
                              hidden_act="gelu", layer_norm_eps=1e-5)
    return CLIPVisionModelWithProjection(config) if projection else CLIPVisionModel(config)


def _full_components(family: str, num_layers: int | None) -> tuple[type, dict[str, Callable[[], Any]]]:
    """(pipeline class, {component name: factory}) of the real architecture, scheduler aside.

    Factories, so that :func:`full_pipeline` can build and cast one module at a time; the big
    denoiser comes first while nothing else is on the device yet.
    """
    import diffusers
    from transformers import CLIPImageProcessor, CLIPTextConfig, CLIPTextModel

    if family == "cogvideox":
        tokenizer = t5_tokenizer(226)
        return diffusers.CogVideoXImageToVideoPipeline, dict(
            transformer=lambda: diffusers.CogVideoXTransformer3DModel(
                num_attention_heads=48, attention_head_dim=64, in_channels=32, out_channels=16, time_embed_dim=512,
                text_embed_dim=4096, num_layers=num_layers or 42, sample_width=90, sample_height=60,
                sample_frames=49, patch_size=2, patch_size_t=None, patch_bias=True, temporal_compression_ratio=4,
                max_text_seq_length=226, use_rotary_positional_embeddings=True,
                use_learned_positional_embeddings=True),
            text_encoder=lambda: _t5_xxl(num_layers, False, tokenizer),
            vae=lambda: diffusers.AutoencoderKLCogVideoX(
                block_out_channels=(128, 256, 256, 512), latent_channels=16, layers_per_block=3,
                temporal_compression_ratio=4, scaling_factor=0.7),
            tokenizer=lambda: tokenizer)
    if family == "ltx":
        tokenizer = t5_tokenizer(128)
        return diffusers.LTXImageToVideoPipeline, dict(
            transformer=lambda: diffusers.LTXVideoTransformer3DModel(  # get_transformer_config("0.9.0")
                in_channels=128, out_channels=128, patch_size=1, patch_size_t=1, num_attention_heads=32,
                attention_head_dim=64, cross_attention_dim=2048, num_layers=num_layers or 28,
                activation_fn="gelu-approximate", qk_norm="rms_norm_across_heads", norm_elementwise_affine=False,
                norm_eps=1e-6, caption_channels=4096, attention_bias=True, attention_out_bias=True),
            text_encoder=lambda: _t5_xxl(num_layers, False, tokenizer),
            vae=lambda: diffusers.AutoencoderKLLTXVideo(  # get_vae_config("0.9.0")
                in_channels=3, out_channels=3, latent_channels=128, block_out_channels=(128, 256, 512, 512),
                decoder_block_out_channels=(128, 256, 512, 512), layers_per_block=(4, 3, 3, 3, 4),
                decoder_layers_per_block=(4, 3, 3, 3, 4), spatio_temporal_scaling=(True, True, True, False),
                decoder_spatio_temporal_scaling=(True, True, True, False), decoder_inject_noise=(False,) * 5,
                upsample_residual=(False,) * 4, upsample_factor=(1,) * 4, patch_size=4, patch_size_t=1,
                resnet_norm_eps=1e-6, scaling_factor=1.0, encoder_causal=True, decoder_causal=False,
                timestep_conditioning=False),
            tokenizer=lambda: tokenizer)
    if family == "wan":
        tokenizer = t5_tokenizer(512)
        return diffusers.WanImageToVideoPipeline, dict(
            transformer=lambda: diffusers.WanTransformer3DModel(  # get_transformer_config("Wan-I2V-14B-480p")
                patch_size=(1, 2, 2), num_attention_heads=40, attention_head_dim=128, in_channels=36,
                out_channels=16, text_dim=4096, freq_dim=256, ffn_dim=13824, num_layers=num_layers or 40,
                cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6, image_dim=1280,
                added_kv_proj_dim=5120, rope_max_seq_len=1024),
            text_encoder=lambda: _t5_xxl(num_layers, True, tokenizer),
            # CLIPVisionModel: the pipeline's declared type and the model card's loading class
            image_encoder=lambda: _clip_vit_h_vision(projection=False),
            vae=lambda: diffusers.AutoencoderKLWan(base_dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
                                                   temperal_downsample=[False, True, True]),
            image_processor=CLIPImageProcessor,  # CLIP's 224-px defaults, as the laion preprocessor
            tokenizer=lambda: tokenizer)
    tokenizer = clip_tokenizer(77)
    return diffusers.I2VGenXLPipeline, dict(
        unet=lambda: diffusers.I2VGenXLUNet(  # I2VGenXLUNet(sample_size=32) defaults
            sample_size=32, in_channels=4, out_channels=4,
            down_block_types=("CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D"),
            up_block_types=("UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D"),
            block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, norm_num_groups=32,
            cross_attention_dim=1024, attention_head_dim=64, num_attention_heads=None),
        text_encoder=lambda: CLIPTextModel(CLIPTextConfig(  # laion CLIP-ViT-H-14 text tower
            vocab_size=49408, hidden_size=1024, intermediate_size=4096, num_attention_heads=16,
            num_hidden_layers=num_layers or 24, max_position_embeddings=77, hidden_act="gelu", projection_dim=1024,
            layer_norm_eps=1e-5, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id)),
        image_encoder=lambda: _clip_vit_h_vision(projection=True),  # I2VGen reads image_embeds (projected)
        vae=lambda: diffusers.AutoencoderKL(  # stabilityai/stable-diffusion-2-1 vae
            in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
            latent_channels=4, norm_num_groups=32, sample_size=768, scaling_factor=0.18215),
        feature_extractor=CLIPImageProcessor,
        tokenizer=lambda: tokenizer)


def _cast(module, dtype) -> None:
    """Cast floating parameters and buffers to ``dtype`` as ``from_pretrained(torch_dtype=dtype)`` would.

    The model class's ``_keep_in_fp32_modules`` stay fp32 -- diffusers: for any half dtype (Wan's
    norms, time embedder, RoPE); transformers: only for fp16 (T5's ``wo``), ``..._strict`` also for
    bf16. Tensor by tensor (not ``module.to``, which diffusers warns about for such models).
    """
    import torch

    keep = set(getattr(module, "_keep_in_fp32_modules", None) or ())
    if hasattr(module, "_keep_in_fp32_modules_strict"):  # a transformers model: its rule
        keep = (keep if dtype == torch.float16 else set()) | set(module._keep_in_fp32_modules_strict or ())
    for name, tensor in list(module.named_parameters()) + list(module.named_buffers()):
        if tensor.is_floating_point():
            tensor.data = tensor.data.to(torch.float32 if keep & set(name.split(".")) else dtype)


def full_pipeline(family: str, device: str = "cuda", dtype: str = "bf16", num_layers: int | None = None,
                  keep_fp32: Sequence[str] = ()):
    """The real architecture of ``family``'s default hub model with random weights, on ``device``.

    For cost benchmarking (FLOPs, memory, time), never for content. ``num_layers`` overrides the
    depth of the denoising transformer (cogvideox/ltx/wan) and of the text encoder (all four, T5 /
    umT5 / CLIP text), so costs can be measured at reduced depth and scaled linearly; VAEs, image
    encoders and the i2vgen UNet keep their real size. Each module is initialised under
    ``torch.device(device)`` (fast on a GPU; ``"meta"`` builds shapes only, for parameter counts)
    and cast to ``dtype`` before the next one is built, so only one module is ever in fp32 at full
    size (Wan's transformer: 66 GB fp32, 33 GB bf16). Casting follows ``from_pretrained`` (see
    :func:`_cast`); the components named in ``keep_fp32`` stay fp32 (pass the family's
    ``Family.fp32_components``: Wan's model card loads its VAE and image encoder in fp32).
    Weights: the libraries' default initialisation under ``torch.manual_seed(0)``.
    """
    import torch

    _check_family(family)
    if num_layers is not None and num_layers < 1:
        raise ValueError(f"num_layers must be >= 1, got {num_layers}")
    torch.manual_seed(0)
    cls, factories = _full_components(family, num_layers)
    # outside the device context: scheduler tables stay on the CPU, as from_pretrained leaves them
    return cls(scheduler=_SCHEDULERS[family](), **_build(factories, device, dtype, keep_fp32))


def _build(factories: dict[str, Callable[[], Any]], device: str, dtype: str,
           keep_fp32: Sequence[str] = ()) -> dict[str, Any]:
    """{name: component}: each factory called under ``torch.device(device)``, in order; a module is put
    in eval mode and cast (:func:`_cast`) to ``dtype`` -- fp32 if named in ``keep_fp32`` -- before the
    next one is built, so only one module is ever in fp32 at full size."""
    import torch

    cast_to = torch_dtype(dtype)
    components: dict[str, Any] = {}
    for name, factory in factories.items():
        with torch.device(device):
            component = factory()
        if isinstance(component, torch.nn.Module):
            component.eval()
            _cast(component, torch.float32 if name in keep_fp32 else cast_to)
        components[name] = component
    return components



def full_component(family: str, name: str, device: str = "cpu", dtype: str = "fp32", num_layers: int | None = None,
                   keep_fp32: Sequence[str] = ()):
    """One module of :func:`full_pipeline` (``"transformer"``, ``"text_encoder"`` ...; family ``"svd"``:
    of :func:`full_svd_pipeline`) built alone, the same way.

    For measuring one component at reduced depth without building the rest (e.g. Wan's 1 B-parameter
    umT5 embedding when only the transformer is wanted). Weights: ``torch.manual_seed(0)`` before it.
    """
    import torch

    if family == "svd":
        if num_layers is not None:
            raise ValueError("the svd build has no num_layers override")
        factories = _svd_factories()
    else:
        _check_family(family)
        if num_layers is not None and num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        _, factories = _full_components(family, num_layers)
    if name not in factories:
        raise ValueError(f"{family} has no component {name!r}; it has {', '.join(factories)}")
    torch.manual_seed(0)
    return _build({name: factories[name]}, device, dtype, keep_fp32)[name]


#: ``stabilityai/stable-video-diffusion-img2vid`` vae/config.json (the SD 2.x encoder, 4 stages, 8x).
SVD_VAE_CONFIG: dict[str, Any] = {
    "in_channels": 3, "out_channels": 3, "down_block_types": ("DownEncoderBlock2D",) * 4,
    "block_out_channels": (128, 256, 512, 512), "layers_per_block": 2, "latent_channels": 4,
    "sample_size": 768, "scaling_factor": 0.18215, "force_upcast": True,
}


def _svd_factories() -> dict[str, Callable[[], Any]]:
    """{component name: factory} of :func:`full_svd_pipeline`'s networks, the UNet first."""
    import diffusers

    return dict(unet=lambda: diffusers.UNetSpatioTemporalConditionModel(sample_size=96, num_frames=14),
                image_encoder=lambda: _clip_vit_h_vision(projection=True),
                vae=lambda: diffusers.AutoencoderKLTemporalDecoder(**SVD_VAE_CONFIG))


def full_svd_pipeline(device: str = "cuda", dtype: str = "fp16"):
    """``stabilityai/stable-video-diffusion-img2vid``'s architecture, random weights, built as :func:`full_pipeline`.

    UNet: ``UNetSpatioTemporalConditionModel``'s defaults, which are the checkpoint's unet/config.json
    (1.52 B parameters); VAE: :data:`SVD_VAE_CONFIG` (``AutoencoderKLTemporalDecoder()`` with the
    class defaults is one 64-channel stage without downsampling, 0.56 M parameters: the pipeline's
    ``vae_scale_factor`` is then 1 and the UNet runs at pixel resolution); image encoder: the
    CLIP ViT-H/14 vision tower with its 1024-d projection; scheduler and feature extractor as the
    checkpoint's. Each module is initialised on ``device`` and
    cast to ``dtype`` before the next is built.
    """
    import diffusers
    import torch
    from transformers import CLIPImageProcessor

    torch.manual_seed(0)
    components = _build(_svd_factories(), device, dtype)
    scheduler = diffusers.EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", interpolation_type="linear",
        num_train_timesteps=1000, prediction_type="v_prediction", sigma_max=700.0, sigma_min=0.002,
        steps_offset=1, timestep_spacing="leading", timestep_type="continuous", use_karras_sigmas=True)
    return diffusers.StableVideoDiffusionPipeline(scheduler=scheduler,
                                                  feature_extractor=CLIPImageProcessor(crop_size=224, size=224),
                                                  **components)


def i2vgen_prompt_embeds(pipe, prompt: list[str], negative_prompt: list[str] | None = None,
                         clip_skip: int | None = 1):
    """``(prompt_embeds, negative_prompt_embeds)`` exactly as ``I2VGenXLPipeline.encode_prompt`` makes them.

    The pipeline's default ``clip_skip=1`` (the penultimate CLIP layer, as the original model) reads
    ``text_encoder.text_model.final_layer_norm``, which transformers 5's ``CLIPTextModel`` no longer
    has; passing these embeddings to the call avoids that path with the same numbers.
    """
    import torch

    tokenizer, encoder = pipe.tokenizer, pipe.text_encoder
    final_norm = getattr(encoder, "text_model", encoder).final_layer_norm

    def embed(texts: list[str], length: int):
        tokens = tokenizer(texts, padding="max_length", max_length=length, truncation=True, return_tensors="pt")
        ids = tokens.input_ids.to(encoder.device)
        use_mask = getattr(encoder.config, "use_attention_mask", False)  # as the pipeline; unset for CLIP
        mask = tokens.attention_mask.to(encoder.device) if use_mask else None
        if clip_skip is None:
            return encoder(ids, attention_mask=mask)[0]
        hidden = encoder(ids, attention_mask=mask, output_hidden_states=True).hidden_states[-(clip_skip + 1)]
        return final_norm(hidden)

    with torch.no_grad():
        pos = embed(list(prompt), tokenizer.model_max_length)
        neg = embed(list(negative_prompt) if negative_prompt is not None else [""] * len(prompt), pos.shape[1])
    return pos.to(encoder.dtype), neg.to(encoder.dtype)


def parameter_counts(pipe) -> dict[str, int]:
    """Parameters per ``torch.nn.Module`` component of a pipeline (works on meta tensors too)."""
    import torch

    return {name: sum(p.numel() for p in module.parameters())
            for name, module in pipe.components.items() if isinstance(module, torch.nn.Module)}
