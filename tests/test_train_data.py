"""Packing sentences into rows with <bos>/<eos>, and a sampler deterministic per seed and rank."""

import pytest
import torch

from gpt_model.data import IGNORE_INDEX, BatchSampler, PackedDataset, pack_documents, synthetic_documents

BOS, EOS, PAD = 0, 1, 2


def test_packing_layout_and_target_mask():
    docs = [[10, 11, 12], [20, 21], [30, 31, 32, 33]]
    x, y = pack_documents(docs, 8, bos_id=BOS, eos_id=EOS, pad_id=PAD, seed=None)
    # rows of 9 tokens: [bos 10 11 12 eos bos 20 21 eos] then [bos 30 31 32 33 eos pad pad pad]
    assert x.tolist() == [[BOS, 10, 11, 12, EOS, BOS, 20, 21], [BOS, 30, 31, 32, 33, EOS, PAD, PAD]]
    assert y.tolist() == [[10, 11, 12, EOS, IGNORE_INDEX, 20, 21, EOS],
                          [30, 31, 32, 33, EOS, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX]]
    # counted targets: every word and every <eos>, nothing else
    assert int((y != IGNORE_INDEX).sum()) == sum(len(d) + 1 for d in docs)


def test_documents_are_never_split_when_they_fit():
    docs = synthetic_documents(500, 50, seed=0, min_len=1, max_len=20)
    x, y = pack_documents(docs, 32, bos_id=BOS, eos_id=EOS, pad_id=PAD, seed=1)
    rebuilt = []
    for inputs, targets in zip(x.tolist(), y.tolist()):
        assert inputs[0] == BOS  # every row starts a document
        row = inputs + [targets[-1] if targets[-1] != IGNORE_INDEX else PAD]
        row = row[: len(row) - next(i for i, t in enumerate(reversed(row)) if t != PAD)]  # strip padding
        assert row[-1] == EOS  # and ends one
        starts = [i for i, t in enumerate(row) if t == BOS] + [len(row)]
        for a, b in zip(starts, starts[1:]):
            tokens = row[a + 1 : b]
            assert tokens[-1] == EOS and EOS not in tokens[:-1]
            rebuilt.append(tokens[:-1])
    assert sorted(rebuilt) == sorted(docs)  # every document whole, exactly once
    assert int((y != IGNORE_INDEX).sum()) == sum(len(d) + 1 for d in docs)


def test_long_documents_are_cut_with_every_token_a_target_once():
    doc = list(range(10, 40))  # 30 words, rows of 9 tokens
    x, y = pack_documents([doc], 8, bos_id=BOS, eos_id=EOS, pad_id=PAD, seed=None)
    counted = y[y != IGNORE_INDEX].tolist()
    assert counted == doc + [EOS]


def test_shared_bos_eos_token_gpt2_style():
    x, y = pack_documents([[10, 11], [20]], 8, bos_id=5, eos_id=5, pad_id=5, seed=None)
    assert x.tolist() == [[5, 10, 11, 5, 20, 5, 5, 5]]
    assert y.tolist() == [[10, 11, 5, 20, 5, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX]]


def test_packing_is_deterministic_per_seed():
    docs = synthetic_documents(200, 50, seed=0)
    a = PackedDataset.from_documents(docs, 16, bos_id=BOS, eos_id=EOS, pad_id=PAD, seed=3)
    b = PackedDataset.from_documents(docs, 16, bos_id=BOS, eos_id=EOS, pad_id=PAD, seed=3)
    c = PackedDataset.from_documents(docs, 16, bos_id=BOS, eos_id=EOS, pad_id=PAD, seed=4)
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


def test_sampler_is_a_pure_function_of_step_seed_and_rank():
    s = BatchSampler(10, 3, seed=1, world_size=2, rank=1, grad_accum_steps=2)
    again = BatchSampler(10, 3, seed=1, world_size=2, rank=1, grad_accum_steps=2)
    assert torch.equal(s.indices(7, 1), again.indices(7, 1))
    assert not torch.equal(BatchSampler(10, 3, seed=2, world_size=2, rank=1).indices(7),
                           BatchSampler(10, 3, seed=1, world_size=2, rank=1).indices(7))


def test_ranks_take_disjoint_slices_of_the_global_batch_and_epochs_cover_the_data():
    ranks = [BatchSampler(12, 2, seed=0, world_size=3, rank=r) for r in range(3)]
    single = BatchSampler(12, 6, seed=0)
    for step in range(4):
        parts = torch.cat([r.indices(step) for r in ranks])
        assert torch.equal(parts, single.indices(step))
        assert torch.equal(parts, ranks[0].global_indices(step))
    # two steps of 6 = one epoch: every row exactly once, the next epoch in another order
    epoch0 = torch.cat([single.indices(0), single.indices(1)]).sort().values
    assert epoch0.tolist() == list(range(12))
    assert not torch.equal(torch.cat([single.indices(0), single.indices(1)]),
                           torch.cat([single.indices(2), single.indices(3)]))


def test_dataset_shape_checks():
    with pytest.raises(ValueError, match="inputs and targets"):
        PackedDataset(torch.zeros(2, 4, dtype=torch.long), torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="seq_len"):
        pack_documents([[1]], 1, bos_id=BOS, eos_id=EOS, pad_id=PAD)
