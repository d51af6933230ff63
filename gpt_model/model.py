"""A decoder-only GPT of N independent blocks, with TransformerLens hook points everywhere.

Read top to bottom: Norm, Attention, MLP, TransformerBlock, GPT. Shapes use
b = batch, t = positions, h = heads, dh = d_head, d = d_model, m = MLP width, V = vocab.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint
from transformer_lens import ActivationCache, HookedRootModule
from transformer_lens.hook_points import HookPoint

from gpt_model.config import GPTConfig
from gpt_model.generation import KVCache, generate


class Norm(nn.Module):
    """LayerNorm or RMSNorm; `hook_normalized` sees its output (after the affine weights).

    `identity=True` is the final-norm slot of a Post-LN model, whose last block already
    normalises: the hook point stays so every variant exposes the same names.
    """

    def __init__(self, cfg: GPTConfig, identity: bool = False):
        super().__init__()
        self.norm: nn.Module | None
        if identity:
            self.norm = None
        elif cfg.norm == "layernorm":
            self.norm = nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps, bias=cfg.bias)
        else:
            self.norm = nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.hook_normalized = HookPoint()

    def forward(self, x: Tensor) -> Tensor:
        return self.hook_normalized(x if self.norm is None else self.norm(x))


class Attention(nn.Module):
    """Causal multi-head self-attention.

    Fused SDPA by default; the explicit softmax(QKᵀ/√dh + mask) path runs only when a hook
    is attached to `hook_attn_scores` or `hook_pattern` (caching them attaches one).
    """

    def __init__(self, cfg: GPTConfig, layer_idx: int):
        super().__init__()
        self.layer_idx = layer_idx
        self.n_head, self.d_head = cfg.n_head, cfg.d_head
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=cfg.bias)
        self.out = nn.Linear(cfg.d_model, cfg.d_model, bias=cfg.bias)
        self.dropout = cfg.dropout
        self.resid_dropout = nn.Dropout(cfg.dropout)
        self.hook_q = HookPoint()  # [b, t, h, dh]
        self.hook_k = HookPoint()  # [b, t, h, dh]
        self.hook_v = HookPoint()  # [b, t, h, dh]
        self.hook_attn_scores = HookPoint()  # [b, h, t_query, t_key], masked with -inf
        self.hook_pattern = HookPoint()  # [b, h, t_query, t_key], rows sum to 1
        self.hook_z = HookPoint()  # [b, t, h, dh]

    def wants_pattern(self) -> bool:
        hooks = (self.hook_attn_scores, self.hook_pattern)
        return any(hp.fwd_hooks or hp.bwd_hooks for hp in hooks)

    def forward(self, x: Tensor, kv_cache: KVCache | None = None) -> Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_head, self.d_head).unbind(2)
        q, k, v = self.hook_q(q), self.hook_k(k), self.hook_v(v)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [b, h, t, dh]
        offset = 0
        if kv_cache is not None:
            offset = kv_cache.length
            k, v = kv_cache.append(self.layer_idx, k, v)  # [b, h, offset + t, dh]
        t_key = k.shape[2]
        p_drop = self.dropout if self.training else 0.0

        if self.wants_pattern():
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(self.d_head)
            mask = causal_mask(t, t_key, offset, x.device)
            scores = self.hook_attn_scores(scores.masked_fill(~mask, float("-inf")))
            pattern = self.hook_pattern(scores.softmax(dim=-1))
            z = F.dropout(pattern, p_drop, self.training) @ v
        elif offset == 0:
            z = F.scaled_dot_product_attention(q, k, v, dropout_p=p_drop, is_causal=True)
        elif t == 1:  # one new query after the cache: it sees every key
            z = F.scaled_dot_product_attention(q, k, v, dropout_p=p_drop)
        else:
            mask = causal_mask(t, t_key, offset, x.device)
            z = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p_drop)

        z = self.hook_z(z.transpose(1, 2))  # [b, t, h, dh]
        return self.resid_dropout(self.out(z.reshape(b, t, d)))


def causal_mask(t_query: int, t_key: int, offset: int, device: torch.device) -> Tensor:
    """[t_query, t_key] bool, True where query offset+i may attend to key j (j ≤ offset+i)."""
    return torch.ones(t_query, t_key, dtype=torch.bool, device=device).tril(diagonal=offset)


class MLP(nn.Module):
    """GELU MLP (GPT-2's tanh approximation) or SwiGLU: silu(x·W_gate) ⊙ (x·W_up) · W_out."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.gated = cfg.mlp == "swiglu"
        width = cfg.mlp_width
        self.fc_in = nn.Linear(cfg.d_model, (2 if self.gated else 1) * width, bias=cfg.bias)
        self.fc_out = nn.Linear(width, cfg.d_model, bias=cfg.bias)
        self.dropout = nn.Dropout(cfg.dropout)
        self.hook_pre = HookPoint()  # [b, t, m], input of the non-linearity (the gate for SwiGLU)
        if self.gated:
            self.hook_pre_linear = HookPoint()  # [b, t, m], SwiGLU's linear branch
        self.hook_post = HookPoint()  # [b, t, m]

    def forward(self, x: Tensor) -> Tensor:
        if self.gated:
            gate, up = self.fc_in(x).chunk(2, dim=-1)
            post = F.silu(self.hook_pre(gate)) * self.hook_pre_linear(up)
        else:
            post = F.gelu(self.hook_pre(self.fc_in(x)), approximate="tanh")
        return self.dropout(self.fc_out(self.hook_post(post)))


class TransformerBlock(nn.Module):
    """Pre-LN: x + f(LN(x)). Post-LN: LN(α·x + f(x)), α = 1, or (2N)^¼ for DeepNorm."""

    def __init__(self, cfg: GPTConfig, layer_idx: int):
        super().__init__()
        self.pre_ln = cfg.ln_placement == "pre"
        self.alpha = cfg.deepnorm_alpha
        self.ln1 = Norm(cfg)
        self.attn = Attention(cfg, layer_idx)
        self.ln2 = Norm(cfg)
        self.mlp = MLP(cfg)
        self.hook_resid_pre = HookPoint()  # [b, t, d]
        self.hook_attn_out = HookPoint()  # [b, t, d]
        self.hook_resid_mid = HookPoint()  # [b, t, d]
        self.hook_mlp_out = HookPoint()  # [b, t, d]
        self.hook_resid_post = HookPoint()  # [b, t, d]

    def forward(self, x: Tensor, kv_cache: KVCache | None = None) -> Tensor:
        x = self.hook_resid_pre(x)
        if self.pre_ln:
            x = self.hook_resid_mid(x + self.hook_attn_out(self.attn(self.ln1(x), kv_cache)))
            return self.hook_resid_post(x + self.hook_mlp_out(self.mlp(self.ln2(x))))
        x = self.hook_resid_mid(self.ln1(self._scale(x) + self.hook_attn_out(self.attn(x, kv_cache))))
        return self.hook_resid_post(self.ln2(self._scale(x) + self.hook_mlp_out(self.mlp(x))))

    def _scale(self, x: Tensor) -> Tensor:
        return x if self.alpha == 1.0 else self.alpha * x


@torch.no_grad()
def deepnorm_init_(block: TransformerBlock, cfg: GPTConfig) -> None:
    """torchscale's decoder init: q/k/v xavier_uniform (gain 1/√2), out_proj xavier_uniform,
    FFN nn.Linear's default; then v_proj, out_proj and the FFN divided by (8N)^¼."""
    d, beta = cfg.d_model, cfg.deepnorm_beta
    qkv = block.attn.qkv.weight  # [3d, d]: q, k, v stacked
    for i in range(3):
        nn.init.xavier_uniform_(qkv[i * d : (i + 1) * d], gain=1 / math.sqrt(2))
    nn.init.xavier_uniform_(block.attn.out.weight)
    block.mlp.fc_in.reset_parameters()
    block.mlp.fc_out.reset_parameters()
    qkv[2 * d :].mul_(beta)
    if block.attn.qkv.bias is not None:
        block.attn.qkv.bias[2 * d :].mul_(beta)
    for linear in (block.attn.out, block.mlp.fc_in, block.mlp.fc_out):
        for p in linear.parameters():
            p.mul_(beta)


class GPT(HookedRootModule):
    """Decoder-only GPT. `model.blocks[i]` is block i, with its own parameters."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos_embed = nn.Embedding(cfg.context_len, cfg.d_model)
        self.hook_embed = HookPoint()  # [b, t, d]
        self.hook_pos_embed = HookPoint()  # [b, t, d]
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(TransformerBlock(cfg, i) for i in range(cfg.n_layer))
        self.ln_final = Norm(cfg, identity=cfg.ln_placement == "post")
        self.unembed = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.unembed.weight = self.embed.weight
        self.activation_checkpointing = False
        self.reset_parameters()
        self.setup()

    # ------------------------------------------------------------------ init
    @torch.no_grad()
    def reset_parameters(self) -> None:
        cfg = self.cfg
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0.0, cfg.init_std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, 0.0, cfg.init_std)
            elif isinstance(module, (nn.LayerNorm, nn.RMSNorm)):
                module.reset_parameters()
        for block in self.blocks:
            if cfg.residual == "scaled_init":  # GPT-2: residual projections get std/√(2N)
                std = cfg.init_std / math.sqrt(2 * cfg.n_layer)
                nn.init.normal_(block.attn.out.weight, 0.0, std)
                nn.init.normal_(block.mlp.fc_out.weight, 0.0, std)
            elif cfg.residual == "deepnorm":
                deepnorm_init_(block, cfg)

    # --------------------------------------------------------------- forward
    def forward(
        self,
        tokens: Tensor,
        targets: Tensor | None = None,
        *,
        return_type: str | None = None,
        kv_cache: KVCache | None = None,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """tokens [b, t] (or [t]) → logits [b, t, V], a loss, or both.

        return_type: "logits" (default without targets), "loss" (default with targets;
        without targets it is the next-token loss of `tokens` itself, as in TransformerLens),
        or "both" → (logits, loss). Targets equal to -100 are ignored.
        """
        if return_type is None:
            return_type = "logits" if targets is None else "loss"
        if return_type not in ("logits", "loss", "both"):
            raise ValueError(f"return_type must be 'logits', 'loss' or 'both', got {return_type!r}")
        tokens = self._check_tokens(tokens, kv_cache)
        b, t = tokens.shape
        start = kv_cache.length if kv_cache is not None else 0
        positions = torch.arange(start, start + t, device=tokens.device)
        x = self.hook_embed(self.embed(tokens)) + self.hook_pos_embed(
            self.pos_embed(positions).expand(b, t, -1)
        )
        x = self.drop(x)  # [b, t, d]
        for block in self.blocks:
            if self.activation_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, kv_cache, use_reentrant=False)
            else:
                x = block(x, kv_cache)
        if kv_cache is not None:
            kv_cache.length += t
        logits = self.unembed(self.ln_final(x))  # [b, t, V]
        if return_type == "logits":
            return logits
        if targets is None:  # next-token loss of the input itself
            logits_for_loss, targets = logits[:, :-1], tokens[:, 1:]
        else:
            logits_for_loss = logits
        loss = F.cross_entropy(
            logits_for_loss.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100
        )
        return loss if return_type == "loss" else (logits, loss)

    def _check_tokens(self, tokens: Tensor, kv_cache: KVCache | None) -> Tensor:
        if not isinstance(tokens, Tensor) or tokens.dtype not in (torch.long, torch.int):
            raise ValueError(
                "tokens must be an int64/int32 tensor of shape [batch, positions]"
            )
        if tokens.dim() == 1:
            tokens = tokens.unsqueeze(0)
        if tokens.dim() != 2 or tokens.shape[1] == 0:
            raise ValueError(f"tokens must have shape [batch, positions], got {tuple(tokens.shape)}")
        start = kv_cache.length if kv_cache is not None else 0
        if start + tokens.shape[1] > self.cfg.context_len:
            raise ValueError(
                f"sequence of {start + tokens.shape[1]} tokens exceeds the model's context_len "
                f"({self.cfg.context_len})"
            )
        # Checking ids costs a device sync on GPU and a graph break under torch.compile: skip
        # it there in training, where the data pipeline produced the ids.
        if not torch.compiler.is_compiling() and (tokens.device.type == "cpu" or not self.training):
            lo, hi = int(tokens.min()), int(tokens.max())
            if lo < 0 or hi >= self.cfg.vocab_size:
                bad = lo if lo < 0 else hi
                raise ValueError(f"token id {bad} is outside the vocabulary [0, {self.cfg.vocab_size})")
        return tokens

    # ------------------------------------------------------------ utilities
    def run_with_cache(self, *model_args, **kwargs) -> tuple[Tensor, ActivationCache]:
        """TransformerLens's run_with_cache, with the cache wrapped as an ActivationCache."""
        out, cache = super().run_with_cache(*model_args, **kwargs)
        return out, ActivationCache(cache, self)

    def hook_names(self) -> list[str]:
        return list(self.hook_dict)

    @torch.no_grad()
    def generate(
        self,
        tokens: Tensor,
        max_new_tokens: int,
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        use_cache: bool = True,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Continue `tokens` [b, t] by `max_new_tokens`; see gpt_model.generation.generate."""
        return generate(
            self,
            tokens,
            max_new_tokens,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            use_cache=use_cache,
            generator=generator,
        )

    def num_params(self, non_embedding: bool = False) -> int:
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.embed.weight.numel() + self.pos_embed.weight.numel()
            if not self.cfg.tie_embeddings:
                n -= self.unembed.weight.numel()
        return n

    def param_counts(self) -> dict[str, int]:
        """Parameters per part: embeddings, each block, final norm, unembedding (untied only)."""
        counts = {"embed": self.embed.weight.numel() + self.pos_embed.weight.numel()}
        for i, block in enumerate(self.blocks):
            counts[f"blocks.{i}"] = sum(p.numel() for p in block.parameters())
        counts["ln_final"] = sum(p.numel() for p in self.ln_final.parameters())
        if not self.cfg.tie_embeddings:
            counts["unembed"] = self.unembed.weight.numel()
        return counts

    @property
    def device(self) -> torch.device:
        return self.embed.weight.device

