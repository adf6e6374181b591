"""Writes wharf's format-detection corpus with the real libraries.

    python make_corpus.py OUTDIR

Every artifact is made by the library that owns the format (scikit-learn,
pickle, joblib with each compressor, skl2onnx/onnx, safetensors, gguf, flax,
mlflow, TensorFlow/Keras, skops, xgboost, lightgbm). PyTorch's CPU wheel is
not on this machine's package index, so the torch.save and TorchScript
archives are written by hand following their documented layouts (see
`torch_zip`). What format each file must be detected as is NOT decided
here: the table lives in the Rust test (`tests/tests/formats.rs`), so the
expectation does not come from the same script. It checks that each
artifact loads with its own loader (and that joblib's dumps do not load
with `pickle.load`), then prints one line per artifact, so the test can
check none is missing.
"""

import gzip
import io
import json
import os
import pickle
import shutil
import struct
import sys
import zipfile
import zlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("MLFLOW_TRACKING_URI", "file:///dev/null/unused")

import numpy as np

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
written = []


def path(name):
    written.append(name)
    p = os.path.join(out, name)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    return p


def write(name, data):
    with open(path(name), "wb") as f:
        f.write(data)


rng = np.random.default_rng(0)
X = rng.normal(size=(64, 4)).astype(np.float32)
y = (X[:, 0] > 0).astype(np.int64)

# --- scikit-learn estimators through pickle, protocols 0 to 5 ---------------
from sklearn.ensemble import IsolationForest
from sklearn.linear_model import LogisticRegression

forest = IsolationForest(n_estimators=3, random_state=0).fit(X)
logreg = LogisticRegression().fit(X, y)
for proto in range(0, 6):
    with open(path(f"sklearn/iforest_p{proto}.pkl"), "wb") as f:
        pickle.dump(forest, f, protocol=proto)
# The same estimator without an extension, and named like a torch file.
with open(path("sklearn/logreg_p4"), "wb") as f:
    pickle.dump(logreg, f, protocol=4)

# --- plain pickles (no scikit-learn) ----------------------------------------
plain = {"weights": [1.5, 2.5], "name": "plain", "layers": (3, 4)}
for proto in (0, 2, 5):
    with open(path(f"pickle/dict_p{proto}.pkl"), "wb") as f:
        pickle.dump(plain, f, protocol=proto)
with open(path("pickle/dict_p4.bin"), "wb") as f:
    pickle.dump(plain, f, protocol=4)
with open(path("pickle/array_p5"), "wb") as f:
    pickle.dump(rng.normal(size=(8, 8)), f, protocol=5)

# --- joblib: plain and every compressor, named .joblib, .pkl and nothing ----
import joblib

joblib.dump(forest, path("joblib/iforest.joblib"))
joblib.dump(forest, path("joblib/iforest.pkl"))
joblib.dump(forest, path("joblib/iforest"))
# joblib.dump of an object without arrays writes a plain pickle.
joblib.dump(plain, path("joblib/plain_dict.joblib"))
for comp in ("zlib", "gzip", "bz2", "xz", "lzma", "lz4"):
    for name in (f"iforest_{comp}.joblib", f"iforest_{comp}.pkl", f"iforest_{comp}"):
        joblib.dump(forest, path(f"joblib/{name}"), compress=(comp, 3))

# --- ONNX (skl2onnx), several IR versions, model_version set -----------------
import onnx
from skl2onnx import to_onnx

onx = to_onnx(logreg, X[:1], target_opset={"": 17, "ai.onnx.ml": 3})
onnx.checker.check_model(onx)
write("onnx/logreg.onnx", onx.SerializeToString())
old = to_onnx(logreg, X[:1], target_opset={"": 9, "ai.onnx.ml": 1})
old.ir_version = 4
onnx.checker.check_model(old)
write("onnx/logreg_ir4.onnx", old.SerializeToString())
versioned = onnx.ModelProto()
versioned.CopyFrom(onx)
versioned.model_version = 7
versioned.doc_string = "a scikit-learn logistic regression"
onnx.checker.check_model(versioned)
write("onnx/logreg_versioned", versioned.SerializeToString())
# An ONNX model built with onnx.helper alone (another producer, IR 8).
node = onnx.helper.make_node("Relu", ["x"], ["y"])
graph = onnx.helper.make_graph(
    [node],
    "relu",
    [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])],
    [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])],
)
relu = onnx.helper.make_model(graph, producer_name="wharf-corpus", opset_imports=[onnx.helper.make_opsetid("", 14)])
relu.ir_version = 8
onnx.checker.check_model(relu)
write("onnx/relu_ir8.bin", relu.SerializeToString())

# --- safetensors and gguf -----------------------------------------------------
from safetensors.numpy import save as st_save

tensors = {"dense.weight": rng.normal(size=(4, 4)).astype(np.float32), "dense.bias": np.zeros(4, np.float32)}
write("safetensors/model.safetensors", st_save(tensors, metadata={"format": "np"}))
write("safetensors/weights", st_save(tensors))

import gguf

w = gguf.GGUFWriter(path("gguf/tiny.gguf"), "llama")
w.add_block_count(1)
w.add_tensor("token_embd.weight", rng.normal(size=(8, 4)).astype(np.float32))
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()

# --- Flax parameters (msgpack) -----------------------------------------------
import jax.numpy as jnp
from flax import serialization

params = {"params": {"Dense_0": {"kernel": jnp.ones((4, 3)), "bias": jnp.zeros(3)}}}
flax_bytes = serialization.to_bytes(params)
write("flax/params", flax_bytes)
write("flax/params.msgpack", flax_bytes)

# --- MLflow model folder --------------------------------------------------------
import mlflow.pyfunc
import mlflow.sklearn

mlflow.sklearn.save_model(logreg, path("mlflow/sklearn_model"))
written.pop()  # a folder: listed once below
written.append("mlflow/sklearn_model/")

# --- TensorFlow SavedModel, its lone saved_model.pb, a .keras file ------------
import tensorflow as tf
import keras


class Adder(tf.Module):
    def __init__(self):
        self.w = tf.Variable(2.0)

    @tf.function(input_signature=[tf.TensorSpec([], tf.float32)])
    def __call__(self, x):
        return x * self.w


tf.saved_model.save(Adder(), os.path.join(out, "tf/savedmodel"))
written.append("tf/savedmodel/")
shutil.copy(os.path.join(out, "tf/savedmodel/saved_model.pb"), path("tf/saved_model.pb"))
kmodel = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
kmodel.save(path("tf/model.keras"))

# --- skops, xgboost, lightgbm -----------------------------------------------------
import skops.io as sio

sio.dump(logreg, path("skops/logreg.skops"))

import xgboost as xgb

booster = xgb.train({"max_depth": 2, "objective": "binary:logistic"}, xgb.DMatrix(X, label=y), num_boost_round=2)
booster.save_model(path("xgboost/model.json"))
booster.save_model(path("xgboost/model.ubj"))

import lightgbm as lgb

lgbm = lgb.train({"objective": "binary", "verbose": -1, "min_data_in_leaf": 5}, lgb.Dataset(X, label=y), num_boost_round=2)
lgbm.save_model(path("lightgbm/model.txt"))


# --- PyTorch, by hand ----------------------------------------------------------------
# torch.save (PyTorch >= 1.6) writes a zip through PyTorchStreamWriter
# (caffe2/serialize/inline_container.h): every record under one folder
# named after the file (`archive/` for buffers), stored uncompressed and
# aligned to 64 bytes with an extra field "FB" of padding: `data.pkl` (the
# object, pickle protocol 2, each storage a persistent id
# ('storage', <storage type>, key, location, numel)), `byteorder`, one
# `data/<key>` per storage, `version`, `.data/serialization_id`. It streams,
# so local headers carry no sizes (flag bit 3, data descriptors).
def _pickle_torch_state(storages):
    """data.pkl of torch.save({name: tensor}) as torch writes it: protocol 2,
    `collections.OrderedDict` of `torch._utils._rebuild_tensor_v2(storage, 0,
    shape, stride, False, OrderedDict())` with each storage a persistent id."""
    import pickletools

    ops = io.BytesIO()
    w = ops.write
    w(b"\x80\x02")
    w(b"ccollections\nOrderedDict\nq\x00)Rq\x01(")
    for i, (name, arr) in enumerate(storages.items()):
        key = str(i).encode()
        w(b"X" + struct.pack("<I", len(name)) + name.encode())
        w(b"ctorch._utils\n_rebuild_tensor_v2\n(")
        w(b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\n")
        w(b"X" + struct.pack("<I", len(key)) + key)
        w(b"X\x03\x00\x00\x00cpuK" + bytes([arr.size]) + b"tQ")
        w(b"K\x00K" + bytes([arr.shape[0]]) + b"\x85K\x01\x85\x89ccollections\nOrderedDict\n)Rtq" + bytes([2 + i]) + b"Rq" + bytes([100 + i]))
    w(b"u.")
    data = ops.getvalue()
    pickletools.dis(data, out=io.StringIO())  # must be a valid pickle
    return data


class _Unseekable(io.RawIOBase):
    """A write-only stream, so zipfile writes data descriptors as torch does."""

    def __init__(self, f):
        self.f = f

    def writable(self):
        return True

    def write(self, b):
        return self.f.write(b)


def torch_zip(name, records, streamed):
    with open(path(name), "wb") as raw:
        target = _Unseekable(raw) if streamed else raw
        with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as z:
            for rec, data in records:
                info = zipfile.ZipInfo(rec, date_time=(1980, 1, 1, 0, 0, 0))
                # 64-byte alignment padding, as PyTorchStreamWriter's "FB" field.
                start = 30 + len(rec.encode()) + 4
                pad = (64 - (raw.tell() + start) % 64) % 64
                info.extra = b"FB" + struct.pack("<H", pad) + b"Z" * pad
                z.writestr(info, data)


weights = {"dense.weight": np.ones(4, np.float32), "dense.bias": np.zeros(2, np.float32)}
state_records = [("archive/data.pkl", _pickle_torch_state(weights)), ("archive/byteorder", b"little")]
state_records += [(f"archive/data/{i}", a.tobytes()) for i, a in enumerate(weights.values())]
state_records += [("archive/version", b"3\n"), ("archive/.data/serialization_id", b"1234567890")]
torch_zip("torch/state_dict.pt", state_records, streamed=True)
torch_zip("torch/state_dict_sized.bin", [(r.replace("archive/", "model/"), d) for r, d in state_records], streamed=False)

# TorchScript (torch.jit.save), per torch/csrc/jit/docs/serialization.md: the
# same container with `code/` (the module's methods as Python source under
# `__torch__`), `constants.pkl` (tensor constants), and a `data.pkl` whose
# classes are `__torch__.<qualified name>`.
script_pkl = (
    b"\x80\x02c__torch__\nM\nq\x00)\x81}(X\x08\x00\x00\x00trainingq\x01\x88ub."
)
script_records = [
    ("m/data.pkl", script_pkl),
    ("m/code/__torch__.py", b"class M(Module):\n  __parameters__ = []\n  training : bool\n  def forward(self: __torch__.M, x: Tensor) -> Tensor:\n    return torch.relu(x)\n"),
    ("m/code/__torch__.py.debug_pkl", pickle.dumps((), protocol=2)),
    ("m/constants.pkl", b"\x80\x02).") ,
    ("m/version", b"3\n"),
    ("m/.data/version", b"3\n"),
]
torch_zip("torch/script.pt", script_records, streamed=True)

# The legacy (PyTorch < 1.6, `_use_new_zipfile_serialization=False`) format:
# pickles one after another: the magic number 0x1950a86a20f9469cfc6c, the
# protocol version 1001, sys_info, the object, the storage keys, then raw
# storages (torch/serialization.py `_legacy_save`).
legacy = io.BytesIO()
for obj in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True}):
    pickle.dump(obj, legacy, protocol=2)
legacy.write(_pickle_torch_state(weights))
pickle.dump(["0", "1"], legacy, protocol=2)
write("torch/legacy.pth", legacy.getvalue())

# --- a Hugging Face model folder ----------------------------------------------------
os.makedirs(os.path.join(out, "hf/bert"), exist_ok=True)
with open(os.path.join(out, "hf/bert/config.json"), "w") as f:
    json.dump({"architectures": ["BertModel"], "model_type": "bert", "hidden_size": 4}, f)
with open(os.path.join(out, "hf/bert/model.safetensors"), "wb") as f:
    f.write(st_save(tensors, metadata={"format": "pt"}))
written.append("hf/bert/")

# --- things that are none of these ------------------------------------------------
write("other/notes.txt", b"weights are in the other bucket\n")
write("other/random.bin", rng.integers(0, 256, size=4096, dtype=np.uint8).tobytes())
write("other/empty", b"")
write("other/text.gz", gzip.compress(b"not a pickle, just text\n" * 100))
write("other/text.zlib", zlib.compress(b"not a pickle either\n" * 100))
write("other/fake.onnx", b"\x08\x07garbage that is not protobuf")
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w") as z:
    z.writestr("readme.txt", "hello")
write("other/archive.zip", buf.getvalue())
# Bytes that start like a pickle (PROTO 4) but are not one.
write("other/broken.pkl", b"\x80\x04\x95\xff\xff\x00\x00\x00\x00\x00\x00\xff\xfe\xfd")
os.makedirs(os.path.join(out, "other/just_files"), exist_ok=True)
with open(os.path.join(out, "other/just_files/a.txt"), "w") as f:
    f.write("a")
written.append("other/just_files/")

# --- every artifact loads with its own loader (the corpus is real) --------------
def loads(fn, name):
    try:
        fn(os.path.join(out, name))
    except Exception as e:  # noqa: BLE001 - any failure is the corpus' bug
        sys.exit(f"{name} does not load: {e!r}")


def refuses(fn, name):
    try:
        fn(os.path.join(out, name))
    except Exception:
        return
    sys.exit(f"{name} should not load this way")


def unpickle(p):
    with open(p, "rb") as f:
        return pickle.load(f)


for name in written:
    if name.startswith(("sklearn/", "pickle/")) or name == "joblib/plain_dict.joblib":
        loads(unpickle, name)
    elif name.startswith("joblib/"):
        loads(joblib.load, name)
        refuses(unpickle, name)
for name in ("onnx/logreg.onnx", "onnx/logreg_ir4.onnx", "onnx/logreg_versioned", "onnx/relu_ir8.bin"):
    loads(lambda p: onnx.checker.check_model(onnx.load(p)), name)
from safetensors.numpy import load_file as st_load

loads(st_load, "safetensors/model.safetensors")
loads(st_load, "safetensors/weights")
loads(lambda p: gguf.GGUFReader(p), "gguf/tiny.gguf")
loads(lambda p: serialization.from_bytes(params, open(p, "rb").read()), "flax/params")
loads(lambda p: mlflow.pyfunc.load_model(p), "mlflow/sklearn_model/")
loads(tf.saved_model.load, "tf/savedmodel/")
refuses(tf.saved_model.load, "tf/saved_model.pb")
loads(keras.models.load_model, "tf/model.keras")
loads(lambda p: sio.load(p, trusted=sio.get_untrusted_types(file=p)), "skops/logreg.skops")
loads(lambda p: xgb.Booster(model_file=p), "xgboost/model.json")
loads(lambda p: xgb.Booster(model_file=p), "xgboost/model.ubj")
loads(lambda p: lgb.Booster(model_file=p), "lightgbm/model.txt")
for name in ("other/text.gz", "other/text.zlib", "other/broken.pkl"):
    refuses(joblib.load, name)
    refuses(unpickle, name)

for name in written:
    print(name)
