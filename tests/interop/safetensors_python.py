"""safetensors interop with the reference implementation (the `safetensors` package), both ways.

usage: safetensors_python.py ST_TOOL WORK_DIR

1. The reference writes (safetensors.numpy.save_file) every dtype cairn shares with it (bfloat16 and
   float8 through ml_dtypes), ranks 0-4, empty tensors, a tensor large enough to need several staging
   rounds, and metadata; `cairn_st_tool dump` yields the same names, dtypes, shapes, offsets, metadata,
   CRC-32C and bytes.
2. cairn writes the same tensors (`cairn_st_tool write`, streamed from a blob); the reference's own
   validating parser (safetensors.deserialize) accepts the file and yields identical bytes. Declared in the
   reference's layout order with a single metadata key, cairn's file is byte-identical to the reference's.
3. Damaged files: whatever the reference rejects, cairn rejects too, with errc::corrupted; the documented
   differences (a dtype or rank cairn lacks: errc::unsupported; a repeated name: rejected by cairn, last one
   wins in the reference) are checked as such.
"""
import json, os, shutil, struct, subprocess, sys

import ml_dtypes
import numpy as np
import safetensors
import safetensors.numpy as stnp

tool, work = sys.argv[1], sys.argv[2]
failures = []
CORRUPTED, UNSUPPORTED = 3, 9  # cairn::errc values


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


# numpy dtype → safetensors name, for every dtype both sides have.
DTYPES = {
    np.dtype(bool): "BOOL", np.dtype(np.uint8): "U8", np.dtype(np.int8): "I8", np.dtype(np.uint16): "U16",
    np.dtype(np.int16): "I16", np.dtype(np.uint32): "U32", np.dtype(np.int32): "I32", np.dtype(np.uint64): "U64",
    np.dtype(np.int64): "I64", np.dtype(np.float16): "F16", np.dtype(ml_dtypes.bfloat16): "BF16",
    np.dtype(np.float32): "F32", np.dtype(np.float64): "F64", np.dtype(np.complex64): "C64",
    np.dtype(ml_dtypes.float8_e4m3fn): "F8_E4M3", np.dtype(ml_dtypes.float8_e5m2): "F8_E5M2",
    np.dtype(ml_dtypes.float8_e8m0fnu): "F8_E8M0",
}
SHAPES = [(), (5,), (3, 4), (2, 3, 4), (2, 1, 3, 2), (0,), (3, 0, 2)]


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def make_tensors(rng):
    out = {}
    for dt, name in DTYPES.items():
        for i, shape in enumerate(SHAPES):
            n = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
            if dt == np.dtype(bool):
                a = np.asarray(rng.integers(0, 2, size=shape)).astype(bool)
            else:  # every bit pattern, NaNs and subnormals included: comparisons are on bytes
                a = np.frombuffer(rng.bytes(n), dtype=dt).reshape(shape).copy()
            out[f"{name.lower()}/{i}"] = a
    out["λ/большой"] = rng.standard_normal((1200, 1100)).astype(np.float32)  # 5.3 MB: several staging rounds
    return out


def header_of(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return n, json.loads(f.read(n))


def dump(path, blob=None):
    args = [tool, "dump", path] + ([blob] if blob else [])
    return json.loads(subprocess.run(args, capture_output=True, check=True).stdout)


def write(out, tensors, metadata, order):
    blob, spec, offset = os.path.join(work, "blob.bin"), {"metadata": metadata, "tensors": []}, 0
    with open(blob, "wb") as f:
        for name in order:
            a = tensors[name]
            f.write(a.tobytes())
            spec["tensors"].append({"name": name, "dtype": DTYPES[a.dtype], "shape": list(a.shape), "offset": offset})
            offset += a.nbytes
    with open(os.path.join(work, "spec.json"), "w", encoding="utf-8") as f:
        json.dump(spec, f, ensure_ascii=False)
    subprocess.run([tool, "write", out, os.path.join(work, "spec.json"), blob], check=True)


shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
rng = np.random.default_rng(11)
tensors = make_tensors(rng)
metadata = {"format": "np", "ключ": "значение ✓", "quote\"s": "a\\b\nc"}

# 1. The reference writes, cairn reads.
ref = os.path.join(work, "reference.safetensors")
stnp.save_file(tensors, ref, metadata=metadata)
n, ref_header = header_of(ref)
blob = os.path.join(work, "cairn_dump.bin")
d = dump(ref, blob)
check(d["metadata"] == metadata, f"metadata: cairn {d['metadata']} != {metadata}")
check(sorted(t["name"] for t in d["tensors"]) == sorted(tensors), "tensor names differ")
data = open(blob, "rb").read()
pos = 0
for t in d["tensors"]:
    name, a = t["name"], tensors.get(t["name"])
    size = t["end"] - t["begin"]
    if a is None:
        continue
    check(t["dtype"] == DTYPES[a.dtype], f"{name}: dtype {t['dtype']} != {DTYPES[a.dtype]}")
    check(tuple(t["shape"]) == a.shape, f"{name}: shape {t['shape']} != {a.shape}")
    check([t["begin"], t["end"]] == ref_header[name]["data_offsets"], f"{name}: offsets differ from the header")
    check(data[pos:pos + size] == a.tobytes(), f"{name}: bytes differ")
    if size <= 65536:
        check(t["crc32c"] == crc32c(a.tobytes()), f"{name}: crc32c {t['crc32c']:#x} differs")
    pos += size
check(pos == len(data), "dumped blob has extra bytes")
print(f"reference → cairn: {len(d['tensors'])} tensors, {pos} bytes, {len(metadata)} metadata entries agree")

# 2. cairn writes, the reference reads (its deserialize validates the layout strictly).
ours = os.path.join(work, "cairn.safetensors")
order = list(tensors)
write(ours, tensors, metadata, order)
n2, our_header = header_of(ours)
check((8 + n2) % 8 == 0, f"cairn's data section starts at {8 + n2}, not a multiple of 8")
check([k for k in our_header if k != "__metadata__"] == order, "cairn's header does not list tensors in the order added")
with open(ours, "rb") as f:
    read_back = safetensors.deserialize(f.read())
check(sorted(name for name, _ in read_back) == sorted(tensors), "reference reads other names")
for name, v in read_back:
    a = tensors[name]
    check(v["dtype"] == DTYPES[a.dtype], f"{name}: reference reads dtype {v['dtype']}")
    check(tuple(v["shape"]) == a.shape, f"{name}: reference reads shape {v['shape']}")
    check(bytes(v["data"]) == a.tobytes(), f"{name}: reference reads other bytes")
with safetensors.safe_open(ours, framework="np") as f:
    check(f.metadata() == metadata, f"reference reads metadata {f.metadata()}")
print(f"cairn → reference: {len(read_back)} tensors agree")

# Byte identity: the reference's layout order and a single metadata key (its metadata order is a hash order).
ref1 = os.path.join(work, "reference1.safetensors")
stnp.save_file(tensors, ref1, metadata={"format": "np"})
_, h1 = header_of(ref1)
ours1 = os.path.join(work, "cairn1.safetensors")
write(ours1, tensors, {"format": "np"}, [k for k in h1 if k != "__metadata__"])
same = open(ref1, "rb").read() == open(ours1, "rb").read()
check(same, "cairn's file is not byte-identical to the reference's for the same layout")
print("byte identity with the reference writer:", "yes" if same else "NO")


# 3. Damaged files.
def st_file(header, data=b"", n=None):
    h = header.encode() if isinstance(header, str) else header
    return struct.pack("<Q", len(h) if n is None else n) + h + data


U8 = lambda name, begin, end: f'"{name}":{{"dtype":"U8","shape":[{end - begin}],"data_offsets":[{begin},{end}]}}'
cases = [
    ("length field cut", b"\x05\x00\x00", CORRUPTED),
    ("header length above 100 MB", st_file("{}", n=100_000_001), CORRUPTED),
    ("header longer than the file", st_file("{}", n=50), CORRUPTED),
    ("invalid JSON", st_file('{"a":'), CORRUPTED),
    ("not an object", st_file("[]"), CORRUPTED),
    ("hole", st_file("{" + U8("a", 0, 2) + "," + U8("b", 4, 8) + "}", b"x" * 8), CORRUPTED),
    ("hole at the end", st_file("{" + U8("a", 0, 4) + "}", b"x" * 8), CORRUPTED),
    ("overlap", st_file('{"a":{"dtype":"U8","shape":[6],"data_offsets":[0,6]},' + U8("b", 4, 8) + "}", b"x" * 8), CORRUPTED),
    ("wrong byte count", st_file('{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', b"x" * 8), CORRUPTED),
    ("negative extent", st_file('{"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,0]}}'), CORRUPTED),
    ("float extent", st_file('{"a":{"dtype":"U8","shape":[1.0],"data_offsets":[0,1]}}', b"x"), CORRUPTED),
    ("offsets reversed", st_file('{"a":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}}', b"x" * 4), CORRUPTED),
    ("end past the data", st_file("{" + U8("a", 0, 9) + "}", b"x" * 8), CORRUPTED),
    ("metadata not strings", st_file('{"__metadata__":{"k":1}}'), CORRUPTED),
    ("unknown dtype", st_file('{"a":{"dtype":"XYZ","shape":[1],"data_offsets":[0,1]}}', b"x"), UNSUPPORTED),
]
for i, (what, content, code) in enumerate(cases):
    path = os.path.join(work, f"bad{i}.safetensors")
    open(path, "wb").write(content)
    try:
        safetensors.deserialize(content)
        check(False, f"{what}: the reference accepts it")
    except Exception:
        pass
    r = subprocess.run([tool, "dump", path], capture_output=True)
    msg = r.stderr.decode()
    check(r.returncode == 3 and msg.startswith(f"error {code}:"), f"{what}: cairn exit {r.returncode}: {msg.strip()}")

# Where cairn differs on purpose.
differs = [
    ("a dtype cairn lacks (F4)", st_file('{"a":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}}', b"x"), UNSUPPORTED),
    ("rank 33", st_file('{"a":{"dtype":"U8","shape":[' + ",".join(["1"] * 33) + '],"data_offsets":[0,1]}}', b"x"), UNSUPPORTED),
    ("a repeated name", st_file("{" + U8("a", 0, 1) + "," + U8("a", 0, 1) + "}", b"x"), CORRUPTED),
]
for i, (what, content, code) in enumerate(differs):
    path = os.path.join(work, f"differs{i}.safetensors")
    open(path, "wb").write(content)
    safetensors.deserialize(content)  # the reference accepts each
    r = subprocess.run([tool, "dump", path], capture_output=True)
    check(r.returncode == 3 and r.stderr.decode().startswith(f"error {code}:"),
          f"{what}: cairn exit {r.returncode}: {r.stderr.decode().strip()}")
print(f"damaged files: {len(cases)} rejected by both, {len(differs)} documented differences")

if failures:
    print(f"{len(failures)} failures")
    sys.exit(1)
print("safetensors interop: all checks passed")
