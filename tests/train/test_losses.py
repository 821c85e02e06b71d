import math

import pytest
import torch
import torch.nn.functional as F

from fastmer.train.losses import FocalLoss, SigmoidFocalLoss, class_weights, focal_loss, sigmoid_focal_loss


def _softmax_focal_by_hand(logits, target, gamma, alpha):
    """FL_i = −Σ_c α_c (1 − p_c)^γ y_c log p_c, element by element in float64."""
    out = []
    for row, t in zip(logits.double().tolist(), target.tolist()):
        z = [math.exp(v) for v in row]
        p = [v / sum(z) for v in z]
        y = t if isinstance(t, list) else [1.0 if c == t else 0.0 for c in range(len(row))]
        a = [1.0] * len(row) if alpha is None else alpha
        out.append(-sum(a[c] * (1 - p[c]) ** gamma * y[c] * math.log(p[c]) for c in range(len(row))))
    return torch.tensor(out, dtype=torch.float64)


def _sigmoid_focal_by_hand(logits, targets, gamma, alpha):
    out = torch.empty(logits.shape, dtype=torch.float64)
    for i, (row, trow) in enumerate(zip(logits.double().tolist(), targets.double().tolist())):
        for c, (x, y) in enumerate(zip(row, trow)):
            p = 1 / (1 + math.exp(-x))
            a = alpha[c] if isinstance(alpha, list) else alpha
            pos = y * (1 - p) ** gamma * math.log(p)
            neg = (1 - y) * p**gamma * math.log(1 - p)
            out[i, c] = -(pos + neg) if a is None else -(a * pos + (1 - a) * neg)
    return out


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 5.0])
@pytest.mark.parametrize("alpha", [None, 0.25, [0.2, 1.0, 3.0, 0.5]])
def test_focal_loss_matches_the_formula(gamma, alpha):
    g = torch.Generator().manual_seed(int(gamma * 10))
    logits = torch.randn(16, 4, generator=g) * 3
    target = torch.randint(0, 4, (16,), generator=g)
    expected = _softmax_focal_by_hand(logits, target, gamma, [alpha] * 4 if isinstance(alpha, float) else alpha)
    got = focal_loss(logits.double(), target, gamma=gamma, alpha=alpha, reduction="none")
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(focal_loss(logits.double(), target, gamma=gamma, alpha=alpha), expected.mean())
    torch.testing.assert_close(focal_loss(logits.double(), target, gamma=gamma, alpha=alpha, reduction="sum"), expected.sum())
    # float32 agrees to float32 precision
    torch.testing.assert_close(focal_loss(logits, target, gamma=gamma, alpha=alpha, reduction="none"),
                               expected.float(), rtol=1e-5, atol=1e-6)


def test_focal_loss_with_probability_targets():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(6, 3, generator=g, dtype=torch.float64)
    target = torch.softmax(torch.randn(6, 3, generator=g, dtype=torch.float64), 1)
    expected = _softmax_focal_by_hand(logits, target, 2.0, [0.5, 1.0, 2.0])
    torch.testing.assert_close(focal_loss(logits, target, alpha=[0.5, 1.0, 2.0], reduction="none"), expected)
    # one-hot float targets equal index targets
    idx = torch.tensor([0, 2, 1, 1, 0, 2])
    torch.testing.assert_close(focal_loss(logits, F.one_hot(idx, 3).double()), focal_loss(logits, idx))


def test_gamma_zero_is_cross_entropy():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(32, 5, generator=g) * 4
    target = torch.randint(0, 5, (32,), generator=g)
    torch.testing.assert_close(focal_loss(logits, target, gamma=0.0), F.cross_entropy(logits, target))
    w = torch.tensor([0.5, 2.0, 1.0, 0.1, 3.0])
    # per-class alpha = CE weights; "mean" here is the plain mean (CE divides by Σ w_{y_i})
    torch.testing.assert_close(focal_loss(logits, target, gamma=0.0, alpha=w, reduction="sum"),
                               F.cross_entropy(logits, target, weight=w, reduction="sum"))
    torch.testing.assert_close(focal_loss(logits, target, gamma=0.0, alpha=w, reduction="none"),
                               F.cross_entropy(logits, target, weight=w, reduction="none"))


def test_focusing_down_weights_easy_examples_and_is_stable():
    logits = torch.tensor([[10.0, 0.0], [0.0, 0.0], [-1e4, 1e4]])
    target = torch.tensor([0, 0, 1])
    ce = focal_loss(logits, target, gamma=0.0, reduction="none")
    fl = focal_loss(logits, target, gamma=2.0, reduction="none")
    assert fl[0] < 1e-3 * ce[0] and fl[1] == pytest.approx(0.25 * ce[1])
    assert torch.isfinite(fl).all() and fl[2] == 0
    huge = torch.tensor([[1e4, -1e4]], requires_grad=True)
    loss = focal_loss(huge, torch.tensor([1]))  # confidently wrong: finite loss and gradient
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(huge.grad).all() and loss.item() == pytest.approx(2e4)


def test_gradcheck_float64():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    target = torch.tensor([0, 1, 2, 1, 0])
    alpha = torch.tensor([0.3, 1.0, 2.0], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: focal_loss(x, target, gamma=2.0, alpha=alpha), (logits,))
    assert torch.autograd.gradcheck(lambda x: focal_loss(x, target, gamma=1.5, reduction="none"), (logits,))
    multi = torch.randint(0, 2, (5, 3), generator=g).double()
    assert torch.autograd.gradcheck(lambda x: sigmoid_focal_loss(x, multi, gamma=2.0, alpha=0.25), (logits,))
    assert torch.autograd.gradcheck(lambda x: sigmoid_focal_loss(x, multi, gamma=0.5, alpha=None, reduction="none"),
                                    (logits,))


@pytest.mark.parametrize("gamma", [0.0, 1.0, 2.0])
@pytest.mark.parametrize("alpha", [None, 0.25, 0.9, [0.1, 0.5, 0.9]])
def test_sigmoid_focal_loss_matches_the_formula(gamma, alpha):
    g = torch.Generator().manual_seed(7)
    logits = torch.randn(8, 3, generator=g, dtype=torch.float64) * 3
    targets = torch.randint(0, 2, (8, 3), generator=g).double()
    expected = _sigmoid_focal_by_hand(logits, targets, gamma, alpha)
    torch.testing.assert_close(sigmoid_focal_loss(logits, targets, gamma=gamma, alpha=alpha, reduction="none"), expected,
                               rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(sigmoid_focal_loss(logits, targets, gamma=gamma, alpha=alpha), expected.mean())
    torch.testing.assert_close(sigmoid_focal_loss(logits, targets, gamma=gamma, alpha=alpha, reduction="sum"),
                               expected.sum())


def test_sigmoid_gamma_zero_no_alpha_is_bce_and_stable():
    logits = torch.tensor([[30.0, -30.0, 0.0, 1e4, -1e4]])
    targets = torch.tensor([[1.0, 0.0, 1.0, 0.0, 1.0]])
    torch.testing.assert_close(sigmoid_focal_loss(logits, targets, gamma=0.0, alpha=None, reduction="none"),
                               F.binary_cross_entropy_with_logits(logits, targets, reduction="none"))
    assert torch.isfinite(sigmoid_focal_loss(logits, targets, reduction="none")).all()


def test_modules_and_device_following_alpha():
    logits = torch.randn(4, 3)
    target = torch.tensor([0, 1, 2, 0])
    module = FocalLoss(gamma=1.0, alpha=[1.0, 2.0, 3.0])
    torch.testing.assert_close(module(logits, target), focal_loss(logits, target, gamma=1.0, alpha=[1.0, 2.0, 3.0]))
    assert "alpha" not in module.state_dict()
    torch.testing.assert_close(FocalLoss(alpha=0.5)(logits, target), 0.5 * FocalLoss()(logits, target))
    multi = torch.randint(0, 2, (4, 3)).float()
    torch.testing.assert_close(SigmoidFocalLoss(reduction="sum")(logits, multi),
                               sigmoid_focal_loss(logits, multi, reduction="sum"))
    torch.testing.assert_close(SigmoidFocalLoss(alpha=[0.1, 0.2, 0.3])(logits, multi),
                               sigmoid_focal_loss(logits, multi, alpha=[0.1, 0.2, 0.3]))


def test_validation():
    logits = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="gamma"):
        focal_loss(logits, torch.tensor([0, 1]), gamma=-1.0)
    with pytest.raises(ValueError, match="reduction"):
        focal_loss(logits, torch.tensor([0, 1]), reduction="avg")
    with pytest.raises(ValueError, match="one value per class"):
        focal_loss(logits, torch.tensor([0, 1]), alpha=[1.0, 2.0])
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        focal_loss(logits, torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="shape"):
        focal_loss(logits, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        sigmoid_focal_loss(logits, torch.zeros(2, 3), alpha=1.5)
    with pytest.raises(ValueError, match="shape"):
        sigmoid_focal_loss(logits, torch.zeros(2, 4))


def test_class_weights_inverse_and_effective():
    labels = [0] * 6 + [1] * 3 + [2] * 1
    w = class_weights(labels, 3)
    inv = torch.tensor([1 / 6, 1 / 3, 1.0], dtype=torch.float64)
    torch.testing.assert_close(w, (inv * 3 / inv.sum()).float())
    assert w.mean().item() == pytest.approx(1.0) and w.dtype == torch.float32
    beta = 0.9
    eff = torch.tensor([(1 - beta) / (1 - beta**n) for n in (6, 3, 1)], dtype=torch.float64)
    torch.testing.assert_close(class_weights(labels, 3, mode="effective", beta=beta), (eff * 3 / eff.sum()).float())
    # β = 0: equal weights; β → 1: inverse frequency
    torch.testing.assert_close(class_weights(labels, 3, mode="effective", beta=0.0), torch.ones(3))
    torch.testing.assert_close(class_weights(labels, 3, mode="effective", beta=1 - 1e-9), w, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(class_weights(torch.tensor([1, 0, 1, 0]), 2), torch.ones(2))


def test_class_weights_missing_class_gets_zero_with_a_warning():
    with pytest.warns(UserWarning, match=r"class\(es\) \[1\]"):
        w = class_weights([0, 0, 2], 3)
    assert w[1] == 0 and torch.isfinite(w).all()
    torch.testing.assert_close(w[[0, 2]].mean(), torch.tensor(1.0))  # mean 1 over the classes present
    for bad in ([0, 3], [-1]):
        with pytest.raises(ValueError, match="lie in"):
            class_weights(bad, 3)
    with pytest.raises(ValueError, match="mode"):
        class_weights([0], 1, mode="sqrt")
    with pytest.raises(ValueError, match="beta"):
        class_weights([0], 1, mode="effective", beta=1.0)
    with pytest.raises(ValueError, match="no labels"):
        class_weights([], 2)
