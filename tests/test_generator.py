"""The bi-level generator: reaches its goal, is deterministic, validates its inputs."""
import chex
import jax
import numpy as np
import pytest

from salm_jax import checkpointing, sharding, tasks
from salm_jax.noise.salm import generator, masks, resident, rounds, surrogate
from tests.helpers import tiny


@pytest.fixture(scope="module")
def data():
  return tiny.blobs()


@pytest.fixture(scope="module")
def salm_run(data):
  images, labels = data
  return generator.generate(tiny.config(stop_accuracy=0.99, max_rounds=8), images, labels,
                            task=tasks.BINARY, num_classes=2, progress=False)


def test_reaches_stop_accuracy_with_sparse_noise(salm_run, data):
  images, _ = data
  res = salm_run
  assert res.stopped_early and res.rounds < 8
  assert res.history[-1]["accuracy"] >= 0.99
  chex.assert_shape(res.delta, images.shape)
  chex.assert_shape(res.masks, images.shape[:3])
  assert np.abs(res.delta).max() <= 8 / 255 + 1e-6
  assert (images + res.delta).min() >= 0 and (images + res.delta).max() <= 1
  touched = (res.delta != 0).any(-1)
  assert not (touched & ~res.masks).any()  # noise only where a mask allowed it
  assert touched.mean() < 0.6              # and it is sparse: far from every pixel
  assert [h["round"] for h in res.history] == list(range(1, res.rounds + 1))


def test_same_seed_same_noise_bit_for_bit(salm_run, data):
  images, labels = data
  again = generator.generate(tiny.config(stop_accuracy=0.99, max_rounds=8), images, labels,
                             task=tasks.BINARY, num_classes=2, progress=False)
  np.testing.assert_array_equal(again.delta, salm_run.delta)
  np.testing.assert_array_equal(again.masks, salm_run.masks)


def test_strict_support_keeps_l0_within_k(data):
  images, labels = data
  res = generator.generate(tiny.config(mask_ratio=0.05, max_rounds=2,
                                       stop_accuracy=1.01), images, labels,
                           task=tasks.BINARY, num_classes=2, progress=False)
  k = masks.num_kept(0.05, images.shape[1] * images.shape[2])
  assert (res.delta != 0).any(-1).sum((1, 2)).max() <= k


def test_em_setting_uses_uniform_init_and_all_pixels(data):
  images, labels = data
  res = generator.generate(tiny.config(mask_ratio=1.0, max_rounds=1, stop_accuracy=1.01),
                           images, labels, task=tasks.BINARY, num_classes=2, progress=False)
  assert (res.delta != 0).any(-1).mean() > 0.9
  assert res.masks.all()


def test_class_wise_fixed_masks_are_identical_within_a_class(data):
  images, labels = data
  res = generator.generate(tiny.config(mode="class", mask_schedule="fixed", mask_ratio=0.1,
                                       pretrain_steps=8, init="sign", max_rounds=2,
                                       stop_accuracy=1.01),
                           images, labels, task=tasks.BINARY, num_classes=2, progress=False)
  k = masks.num_kept(0.1, images.shape[1] * images.shape[2])
  for c in (0, 1):
    rows = res.masks[labels[:, 0] == c]
    assert (rows == rows[0]).all()          # one support per class
    assert rows[0].sum() == k
  touched = (res.delta != 0).any(-1)
  assert not (touched & ~res.masks).any()    # noise only on the class's support
  assert touched.sum((1, 2)).max() <= k


def test_sign_init_starts_at_plus_minus_epsilon_on_the_fixed_mask(data):
  images, labels = data
  res = generator.generate(tiny.config(mask_schedule="fixed", mask_ratio=0.1, init="sign",
                                       pgd_steps=0, max_rounds=1, stop_accuracy=1.01),
                           images, labels, task=tasks.BINARY, num_classes=2, progress=False)
  inside = res.masks[..., None] & (images + res.delta > 0) & (images + res.delta < 1)
  np.testing.assert_allclose(np.abs(res.delta[inside]), 8 / 255, rtol=1e-5)
  assert (res.delta[~np.broadcast_to(res.masks[..., None], res.delta.shape)] == 0).all()


def test_pretraining_changes_the_fixed_mask_and_is_deterministic(data):
  images, labels = data
  kw = dict(task=tasks.BINARY, num_classes=2, progress=False)
  cfg = lambda n: tiny.config(mask_schedule="fixed", mask_ratio=0.1, pretrain_steps=n,
                              max_rounds=1, stop_accuracy=1.01)
  cold, warm, warm2 = (generator.generate(cfg(n), images, labels, **kw) for n in (0, 8, 8))
  assert (cold.masks != warm.masks).any()
  np.testing.assert_array_equal(warm.delta, warm2.delta)
  # keep_pretrained=False: the pretrained mask, but min-min from the fresh surrogate.
  reset = generator.generate(_with(cfg(8), keep_pretrained=False),
                             images, labels, **kw)
  assert (reset.masks == warm.masks).all() and (reset.delta != warm.delta).any()


def _with(cfg, **noise):
  cfg.noise.update(noise)
  return cfg


@pytest.mark.parametrize("noise, match", [
    (dict(init="sign"), "mask_schedule='fixed'"),
    (dict(mask_schedule="round"), "mask_schedule"),
    (dict(mode="pixel"), "noise.mode"),
    (dict(pretrain_steps=-1), "pretrain_steps"),
])
def test_masking_options_are_checked(data, noise, match):
  images, labels = data
  with pytest.raises(ValueError, match=match):
    generator.generate(tiny.config(**noise), images, labels, task=tasks.BINARY, num_classes=2)


def test_class_wise_noise_is_shared_within_a_class(data):
  images, labels = data
  res = generator.generate(tiny.config(mode="class", max_rounds=2, stop_accuracy=1.01),
                           images, labels, task=tasks.BINARY, num_classes=2, progress=False)
  # Where clipping to [0, 1] did not bite, two images of a class carry the same noise.
  a, b = np.flatnonzero(labels[:, 0] == 1)[:2]
  free = ((images[a] + res.delta[a]) > 0) & ((images[b] + res.delta[b]) > 0) & (
      images[a] < 0.9) & (images[b] < 0.9)
  np.testing.assert_allclose(res.delta[a][free], res.delta[b][free], atol=1e-6)
  assert np.abs(res.delta).max() > 0


def test_multilabel_runs(data):
  images, _ = data
  labels = np.random.default_rng(0).integers(0, 2, (len(images), 3))
  res = generator.generate(tiny.config(max_rounds=1, stop_accuracy=1.01), images, labels,
                           task=tasks.MULTI_LABEL, num_classes=3, progress=False)
  assert np.abs(res.delta).max() > 0


@pytest.mark.parametrize("noise", [dict(mode="class", mask_ratio=0.1),  # the default
                                   dict(mode="sample", mask_ratio=1.0)])  # EM
def test_sharded_over_8_devices_equals_1_device(data, noise):
  images, labels = data
  cfg = tiny.config(max_rounds=2, stop_accuracy=1.01, **noise)
  runs = [generator.generate(cfg, images, labels, task=tasks.BINARY, num_classes=2,
                             progress=False, mesh=sharding.data_mesh(jax.devices()[:n]))
          for n in (1, 8)]
  assert len(jax.devices()) == 8
  np.testing.assert_array_equal(runs[0].delta, runs[1].delta)
  np.testing.assert_array_equal(runs[0].masks, runs[1].masks)


def test_class_noise_unexpanded_gives_the_rows_noise_part_by_part(data):
  images, labels = data
  cfg = tiny.config(max_rounds=1, stop_accuracy=1.01, mode="class", mask_ratio=0.1)
  kwargs = dict(task=tasks.BINARY, num_classes=2, progress=False)
  rows = generator.generate(cfg, images, labels, **kwargs)
  per_class = generator.generate(cfg, images, labels, expand=False, **kwargs)
  assert per_class.delta is None and per_class.masks is None
  noise, part = per_class.class_noise, slice(5, 40)
  np.testing.assert_array_equal(noise.delta(images[part], part), rows.delta[part])
  np.testing.assert_array_equal(noise.masks(part), rows.masks[part])


@pytest.mark.parametrize("ensemble", [(), ("small_cnn:4", "resnet18:4")])
def test_checkpoints_resume_to_the_same_noise(data, tmp_path, ensemble):
  images, labels = data
  cfg = tiny.config(max_rounds=3, stop_accuracy=1.01)
  cfg.surrogate.ensemble = ensemble  # an ensemble's state is a tuple of members' states
  kwargs = dict(task=tasks.BINARY, num_classes=2, progress=False)
  full = generator.generate(cfg, images, labels, checkpoint_dir=str(tmp_path / "a"), **kwargs)
  assert checkpointing.latest_round(str(tmp_path / "a")) == 2
  short = cfg.copy_and_resolve_references()
  short.noise.max_rounds = 1
  generator.generate(short, images, labels, checkpoint_dir=str(tmp_path / "b"), **kwargs)
  resumed = generator.generate(cfg, images, labels, checkpoint_dir=str(tmp_path / "b"),
                               **kwargs)
  np.testing.assert_array_equal(resumed.delta, full.delta)
  assert [h["accuracy"] for h in resumed.history] == [h["accuracy"] for h in full.history]


@pytest.mark.parametrize("change, match", [
    (dict(mask_ratio=0.0), "mask_ratio"),
    (dict(epsilon=2.0), "epsilon"),
    (dict(init="gaussian"), "init"),
    (dict(mode="batch"), "mode"),
    (dict(max_rounds=0), "max_rounds"),
])
def test_invalid_settings_raise(data, change, match):
  images, labels = data
  with pytest.raises(ValueError, match=match):
    generator.generate(tiny.config(**change), images, labels, task=tasks.BINARY,
                       num_classes=2, progress=False)


def test_bad_inputs_raise(data):
  images, labels = data
  cfg = tiny.config()
  bad = images.copy()
  bad[0, 0, 0, 0] = np.nan
  with pytest.raises(ValueError, match="NaN"):
    generator.generate(cfg, bad, labels, task=tasks.BINARY, num_classes=2)
  with pytest.raises(ValueError, match="labels"):
    generator.generate(cfg, images, labels + 5, task=tasks.BINARY, num_classes=2)
  with pytest.raises(ValueError, match="labels"):
    generator.generate(cfg, images, labels[:3], task=tasks.BINARY, num_classes=2)
  with pytest.raises(ValueError, match="float32 in"):
    generator.generate(cfg, images.astype(np.float64), labels, task=tasks.BINARY,
                       num_classes=2)
  with pytest.raises(ValueError, match="multi-label"):
    generator.generate(tiny.config(mode="class"), images, labels, task=tasks.MULTI_LABEL,
                       num_classes=1)


@pytest.mark.parametrize("mode", ["class", "sample"])
def test_eot_noise_is_seeded_and_differs_from_the_plain_round(data, mode):
  images, labels = data
  kw = dict(task=tasks.BINARY, num_classes=2, progress=False)
  cfg = lambda n: tiny.config(mode=mode, max_rounds=1, stop_accuracy=1.01, eot_samples=n)
  plain, eot, again = (generator.generate(cfg(n), images, labels, **kw) for n in (0, 2, 2))
  np.testing.assert_array_equal(eot.delta, again.delta)
  assert (plain.delta != eot.delta).any() and np.abs(eot.delta).max() <= 8 / 255 + 1e-6


@pytest.mark.parametrize("init", ["ar", "lsp"])
def test_a_transferable_start_is_the_pattern_on_its_top_k_pixels_at_epsilon(data, init):
  from salm_jax.noise.salm import starts  # pylint: disable=g-import-not-at-top
  images, labels = data
  cfg = tiny.config(mode="class", init=init, mask_ratio=0.1)
  delta = starts.transfer_start(cfg, images, labels, task=tasks.BINARY, num_classes=2,
                                groups=labels[:, 0])
  k = masks.num_kept(0.1, images.shape[1] * images.shape[2])
  assert delta.shape == (2,) + images.shape[1:]
  assert ((delta != 0).any(-1).sum((1, 2)) <= k).all()
  np.testing.assert_allclose(np.abs(delta).max((1, 2, 3)), 8 / 255, rtol=1e-6)
  res = generator.generate(_with(cfg, max_rounds=1, stop_accuracy=1.01), images, labels,
                           task=tasks.BINARY, num_classes=2, progress=False)
  assert (res.delta != 0).any(-1).sum((1, 2)).max() <= k


@pytest.mark.parametrize("mode", ["class", "sample"])
def test_noise_stays_on_the_devices_from_round_to_round(data, monkeypatch, mode):
  """δ and its masks reach the host only at the end, each process its own rows: no transfer
  per batch or per round, and no gather."""
  images, labels = data
  cfg = tiny.config(mode=mode, max_rounds=3, stop_accuracy=1.01, pgd_batch_size=16)
  gathered, local = [], []
  real_host, real_local = sharding.to_host, resident.local
  monkeypatch.setattr(sharding, "to_host", lambda a: gathered.append(a.shape) or real_host(a))
  monkeypatch.setattr(resident, "local", lambda a, l: local.append(a.shape) or real_local(a, l))
  generator.generate(cfg, images, labels, task=tasks.BINARY, num_classes=2, progress=False,
                     mesh=sharding.data_mesh(jax.devices()[:2]))
  assert len(images) // 16 >= 4  # four batches a round, three rounds
  assert not [c for c in gathered if c[1:3] == images.shape[1:3]]  # not the surrogate's
  # per image: δ and masks, each process its own rows; class-wise: the rows' images, which
  # the replicated class noise is expanded over
  expected = [images.shape[1:]] if mode == "class" else [images.shape[1:], images.shape[1:3]]
  assert [c[1:] for c in local] == expected


def test_uint8_images_give_the_noise_of_their_float_form(data):
  """The host may keep the images as uint8: each batch is converted on its way."""
  images, labels = data
  as_uint8 = np.rint(images * 255).astype(np.uint8)
  cfg = tiny.config(mode="sample", max_rounds=2, stop_accuracy=1.01)
  runs = [generator.generate(cfg, x, labels, task=tasks.BINARY, num_classes=2, progress=False)
          for x in (as_uint8, as_uint8.astype(np.float32) / 255)]
  np.testing.assert_array_equal(runs[0].delta, runs[1].delta)
  np.testing.assert_array_equal(runs[0].masks, runs[1].masks)


def test_a_per_image_pgd_batch_moves_no_noise_between_devices(data):
  """Batch b is a local slice of every device's rows: the compiled round has no collectives."""
  images, labels = data
  cfg = tiny.config(mode="sample", pgd_batch_size=16)
  sur, state = surrogate.create(cfg.surrogate, task=tasks.BINARY, num_classes=2,
                                in_channels=1, image_size=images.shape[1], seed=0)
  steps = generator.compiled_steps(sur, cfg.noise)
  mesh = sharding.data_mesh(jax.devices()[:8])
  layout = generator.layout_of(cfg.noise, mesh, len(images))
  table = rounds.load_table(mesh, layout, images, labels, None)
  run = generator.fresh(cfg.noise, table, sharding.replicate(mesh, state), jax.random.key(0), 2)
  hlo = steps.pgd_rows.lower(run.state, table.images, table.labels, run.delta, run.union, None,
                             1, None, mesh=mesh, chunk=layout.chunk).compile().as_text()
  for collective in ("all-gather", "all-to-all", "collective-permute", "all-reduce"):
    assert collective not in hlo, collective


def test_layout_keeps_batches_consecutive_and_each_process_owns_its_devices_rows():
  """Batch b is rows [bB, (b+1)B) on any mesh; the processes' rows partition range(n)."""
  layout = resident.Layout(n=50, batch=16, ndev=4)
  every = np.concatenate([layout.device_rows(d) for d in range(4)])
  assert sorted(every) == list(range(layout.padded))
  for b in range(layout.calls):
    blocks = np.stack([layout.device_rows(d) for d in range(4)])
    got = resident.take(jax.numpy.asarray(blocks.reshape(-1)), b, layout.chunk, 4)
    np.testing.assert_array_equal(got, np.arange(b * 16, (b + 1) * 16))
  np.testing.assert_array_equal(layout.positions(every), np.arange(layout.padded))

  class Dev:  # two processes with two devices each
    def __init__(self, p):
      self.process_index = p
  mesh = type("M", (), {"devices": np.array([Dev(0), Dev(0), Dev(1), Dev(1)])})
  own = [layout.owned(mesh, p) for p in (0, 1)]
  assert sorted(np.concatenate(own)) == list(range(50))
  assert abs(len(own[0]) - len(own[1])) <= layout.chunk * 2


def test_resume_on_another_mesh_is_refused_with_the_reason(data, tmp_path):
  """A checkpoint's rows are laid out for its mesh: another device count is refused."""
  images, labels = data
  cfg = tiny.config(max_rounds=1, stop_accuracy=1.01, pgd_batch_size=16)
  generator.generate(cfg, images, labels, task=tasks.BINARY, num_classes=2, progress=False,
                     checkpoint_dir=str(tmp_path), mesh=sharding.data_mesh(jax.devices()[:2]))
  cfg.noise.max_rounds = 2
  with pytest.raises(ValueError, match="same number of devices"):
    generator.generate(cfg, images, labels, task=tasks.BINARY, num_classes=2, progress=False,
                       checkpoint_dir=str(tmp_path),
                       mesh=sharding.data_mesh(jax.devices()[:4]))
