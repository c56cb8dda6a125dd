"""The released scripts' command-line flags, and what takes their place in naonet.

``train_search.py``'s flags map to ``nao search``'s, ``train_cifar.py``'s and
``train_imagenet.py``'s to ``nao train``'s. A released flag written with underscores
whose dashed form naonet has (``--keep_prob``: ``--keep-prob``) needs no entry.
docs/search.md ("From the released code's flags") gives the same map with notes; a test
holds the two together.
"""

from __future__ import annotations

# released flag -> what to pass instead, per naonet command
RENAMED = {
    "search": {
        "--output_dir": "--output", "--search_space": "--space",
        "--child_batch_size": "--batch-size", "--child_eval_batch_size": "--eval-batch-size",
        "--child_epochs": "--supernet-epochs (per round; --rounds counts the rounds)",
        "--child_layers": "--layers", "--child_channels": "--channels",
        "--child_cutout_size": "--cutout", "--child_grad_bound": "--grad-clip",
        "--child_l2_reg": "--weight-decay", "--child_lr_max": "--lr",
        "--child_lr_min": "--lr-min", "--child_keep_prob": "--keep-prob",
        "--child_drop_path_keep_prob": "--drop-path-keep-prob",
        "--child_arch_pool": "--seed-pool-file",
        "--controller_seed_arch": "--seed-pool-size",
        "--controller_new_arch": "--new-architectures",
        "--controller_expand": "--controller-augment",
        "--controller_encoder_hidden_size": "--controller-hidden-size (one size for both)",
        "--controller_decoder_hidden_size": "--controller-hidden-size (one size for both)",
        "--controller_encoder_emb_size": "--controller-embedding-size",
        "--controller_l2_reg": "--controller-weight-decay",
        "--controller_grad_bound": "--controller-grad-clip",
        "--zip_file": "--data (it takes a .tar.gz archive)",
        "--lazy_load": "--data (it takes a .tar.gz archive)",
    },
    "train": {
        "--output_dir": "--output", "--search_space": "--space",
        "--cutout_size": "--cutout", "--grad_bound": "--grad-clip", "--l2_reg": "--weight-decay",
        "--lr_max": "--lr", "--use_aux_head": "--aux-head",
        "--label_smooth": "--label-smoothing",
        "--gamma": "--lr-schedule exponential --lr-gamma",
        "--zip_file": "--data (it takes a .tar.gz archive)",
        "--lazy_load": "--data (it takes a .tar.gz archive)",
    },
}

# released flags with no naonet counterpart, and why
NOT_OFFERED = {
    "search": {
        "--child_use_aux_head": "the supernet trains without an auxiliary head",
        "--child_lr": "the supernet trains on a cosine schedule (--lr, --lr-min)",
        "--child_label_smooth": "the supernet trains on a cosine schedule without it",
        "--child_gamma": "the supernet trains on a cosine schedule (--lr, --lr-min)",
        "--child_decay_period": "the supernet trains on a cosine schedule (--lr, --lr-min)",
        "--child_nodes": "the node count is the space's (the library's cell spaces)",
        "--controller_encoder_dropout": "the library's ControllerConfig has it",
        "--controller_decoder_dropout": "the library's ControllerConfig has it",
        "--controller_optimizer": "Adam, the released default, only",
        "--controller_source_length": "it is read off the space",
        "--controller_encoder_length": "it is read off the space",
        "--controller_decoder_length": "it is read off the space",
        "--controller_encoder_vocab_size": "it is read off the space",
        "--controller_decoder_vocab_size": "it is read off the space",
        "--mode": "nao eval CHECKPOINT evaluates",
    },
    "train": {
        "--decay_period": "the learning rate decays every epoch, the released period",
        "--mode": "nao eval CHECKPOINT evaluates",
    },
}

RELEASED_SCRIPTS = {"search": "train_search.py", "train": "train_cifar.py and train_imagenet.py"}


def released_flag_hint(command: str, flag: str, known: set[str]) -> str | None:
    """What to say of ``flag``, refused by ``nao command`` whose flags are ``known``, if
    it is one of the released scripts' flags (None otherwise)."""
    script = RELEASED_SCRIPTS.get(command)
    if script is None or not flag.startswith("--"):
        return None
    name = flag.split("=", 1)[0]
    if name in RENAMED[command]:
        return f"{name} is a flag of the released {script}: pass {RENAMED[command][name]}"
    if name in NOT_OFFERED[command]:
        return (f"{name} is a flag of the released {script}, not offered here: "
                f"{NOT_OFFERED[command][name]}")
    dashed = name.replace("_", "-")
    if dashed != name and dashed in known:  # the released spelling of a flag we share
        return f"naonet's flags are written with dashes: pass {dashed}"
    return None
