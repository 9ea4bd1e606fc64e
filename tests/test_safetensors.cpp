// safetensors reader/writer: round trips, byte-by-byte malformed files, sharded indexes,
// and parity with an independent Python (stdlib + torch) implementation of the spec.
#include <gtest/gtest.h>

#include "tests/test_util.h"
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/file_io.h"
#include "formats/safetensors.h"

using namespace gemkit;
namespace fs = std::filesystem;

namespace {

std::string temp_folder(const std::string& name) { return test::temp_folder("st", name); }

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A safetensors file built by hand: u64 header length (or `header_len_override`), the
// header text as given, then `data_bytes` bytes of data.
std::string raw_file(const std::string& path, const std::string& header, size_t data_bytes,
                     int64_t header_len_override = -1) {
  uint64_t len = header_len_override >= 0 ? uint64_t(header_len_override) : header.size();
  std::string bytes(reinterpret_cast<const char*>(&len), 8);
  bytes += header;
  for (size_t i = 0; i < data_bytes; ++i) bytes.push_back(char(i));
  write_bytes(path, bytes);
  return path;
}

using test::expect_error;

void expect_file_error(const std::string& path, const std::vector<std::string>& parts) {
  std::vector<std::string> all = parts;
  all.insert(all.begin(), path);
  expect_error([&] { SafetensorsFile file(path); }, all);
}

// fp32 -> fp16 / bf16 bits for values that are exactly representable (all the test values).
uint16_t f16_bits(float x) {
  uint32_t b;
  std::memcpy(&b, &x, 4);
  if ((b & 0x7fffffff) == 0) return uint16_t(b >> 16);
  const uint32_t sign = (b >> 31) << 15;
  const int exponent = int((b >> 23) & 0xff) - 127 + 15;
  return uint16_t(sign | uint32_t(exponent) << 10 | ((b & 0x7fffff) >> 13));
}
uint16_t bf16_bits(float x) {
  uint32_t b;
  std::memcpy(&b, &x, 4);
  return uint16_t(b >> 16);
}
float from_f16(uint16_t h) {
  const uint32_t sign = uint32_t(h >> 15) << 31;
  const uint32_t exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff;
  uint32_t b = sign;
  if (exponent != 0) b |= (exponent - 15 + 127) << 23 | mantissa << 13;
  float x;
  std::memcpy(&x, &b, 4);
  return x;
}
float from_bf16(uint16_t h) {
  uint32_t b = uint32_t(h) << 16;
  float x;
  std::memcpy(&x, &b, 4);
  return x;
}

// The values every cross-check uses: 0.25 * i - 1 for i in [0, n).
std::vector<float> test_values(size_t n) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = 0.25f * float(i) - 1.0f;
  return v;
}

std::vector<float> read_as_floats(const TensorView& view) {
  std::vector<float> out(size_t(view.numel()));
  for (size_t i = 0; i < out.size(); ++i) {
    if (view.dtype == DType::F32) {
      std::memcpy(&out[i], view.data + 4 * i, 4);
    } else {
      uint16_t h;
      std::memcpy(&h, view.data + 2 * i, 2);
      out[i] = view.dtype == DType::F16 ? from_f16(h) : from_bf16(h);
    }
  }
  return out;
}

int run_python(const std::string& script_path, const std::string& args) {
  const std::string command = std::string(GEMKIT_TORCH_PYTHON) + " " + script_path + " " + args;
  return std::system(command.c_str());
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Round trips

TEST(Safetensors, WriterRoundTripsEveryDtypeWithMetadata) {
  const std::string path = temp_folder("roundtrip") + "/t.safetensors";
  const std::vector<float> f32 = test_values(6);
  std::vector<uint16_t> f16, bf16;
  for (float x : f32) f16.push_back(f16_bits(x)), bf16.push_back(bf16_bits(x));
  const std::vector<double> f64 = {1.5, -2.25, 1e300};
  const std::vector<int64_t> i64 = {-1, 1LL << 40};
  const std::vector<int32_t> i32 = {7, -8, 9};
  const std::vector<int16_t> i16 = {-300};
  const std::vector<int8_t> i8 = {-3, 4};
  const std::vector<uint8_t> u8 = {250, 1, 2};
  const std::vector<uint8_t> flags = {1, 0};

  SafetensorsWriter w;
  // Added out of name order: the header must come out sorted by name.
  w.add("z.f32", DType::F32, {2, 3}, f32.data(), 24);
  w.add("a.f16", DType::F16, {6}, f16.data(), 12);
  w.add("m.bf16", DType::BF16, {3, 2}, bf16.data(), 12);
  w.add("f64", DType::F64, {3}, f64.data(), 24);
  w.add("i64", DType::I64, {2}, i64.data(), 16);
  w.add("i32", DType::I32, {3}, i32.data(), 12);
  w.add("i16", DType::I16, {1}, i16.data(), 2);
  w.add("i8", DType::I8, {2}, i8.data(), 2);
  w.add("u8", DType::U8, {3}, u8.data(), 3);
  w.add("flags", DType::BOOL, {2}, flags.data(), 2);
  w.add("scalar", DType::F32, {}, f32.data(), 4);
  w.add("empty", DType::F32, {0, 4}, nullptr, 0);
  w.set_metadata({{"format", "pt"}, {"note", "quote \" and unicode \xc3\xa9"}});
  EXPECT_EQ(w.total_bytes(), 24u + 12 + 12 + 24 + 16 + 12 + 2 + 2 + 3 + 2 + 4);
  w.write(path);

  const SafetensorsFile file(path);
  EXPECT_EQ(file.metadata().at("format"), "pt");
  EXPECT_EQ(file.metadata().at("note"), "quote \" and unicode \xc3\xa9");
  ASSERT_EQ(file.tensors().size(), 12u);
  // Data laid out in name order, so offset order == name order.
  for (size_t i = 1; i < file.tensors().size(); ++i)
    EXPECT_LT(file.tensors()[i - 1].name, file.tensors()[i].name);

  const TensorView& z = file.at("z.f32");
  EXPECT_EQ(z.dtype, DType::F32);
  EXPECT_EQ(z.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(z.numel(), 6);
  EXPECT_EQ(read_as_floats(z), f32);
  EXPECT_EQ(read_as_floats(file.at("a.f16")), f32);
  EXPECT_EQ(read_as_floats(file.at("m.bf16")), f32);
  EXPECT_EQ(std::memcmp(file.at("f64").data, f64.data(), 24), 0);
  EXPECT_EQ(std::memcmp(file.at("i64").data, i64.data(), 16), 0);
  EXPECT_EQ(std::memcmp(file.at("i32").data, i32.data(), 12), 0);
  EXPECT_EQ(std::memcmp(file.at("u8").data, u8.data(), 3), 0);
  EXPECT_EQ(file.at("flags").dtype, DType::BOOL);
  EXPECT_EQ(file.at("scalar").shape.size(), 0u);
  EXPECT_EQ(file.at("scalar").numel(), 1);
  EXPECT_EQ(file.at("empty").nbytes, 0u);
  EXPECT_EQ(file.find("nope"), nullptr);
  expect_error([&] { file.at("nope"); }, {path, "tensor nope"});

  // Header padded with spaces so that the data starts 8-byte aligned.
  const std::string bytes = read_text_file(path);
  uint64_t header_len;
  std::memcpy(&header_len, bytes.data(), 8);
  EXPECT_EQ((8 + header_len) % 8, 0u);
  const std::string header = bytes.substr(8, header_len);
  EXPECT_EQ(header.rfind("{\"__metadata__\":", 0), 0u) << header;
  EXPECT_EQ(header.find_last_not_of(' '), header.find_last_of('}'));
  EXPECT_LT(header.find("\"a.f16\""), header.find("\"z.f32\""));
  EXPECT_EQ(bytes.size(), 8 + header_len + w.total_bytes());
}

TEST(Safetensors, EmptyFileHasNoTensors) {
  const std::string path = temp_folder("empty") + "/e.safetensors";
  SafetensorsWriter().write(path);
  const SafetensorsFile file(path);
  EXPECT_TRUE(file.tensors().empty());
  EXPECT_TRUE(file.metadata().empty());
}

TEST(Safetensors, UnpaddedHeaderFromOtherWritersIsAccepted) {
  // Older writers did not pad: the data may start at any offset.
  const std::string path = temp_folder("unpadded") + "/u.safetensors";
  raw_file(path, R"({"t":{"dtype":"I8","shape":[3],"data_offsets":[0,3]}})", 3);
  const SafetensorsFile file(path);
  EXPECT_EQ(file.at("t").data[2], 2);
}

TEST(Safetensors, WriterRejectsInconsistentTensors) {
  SafetensorsWriter w;
  const float x[4] = {};
  expect_error([&] { w.add("t", DType::F32, {3}, x, 16); }, {"tensor t", "expected 12 bytes", "got 16"});
  w.add("t", DType::F32, {4}, x, 16);
  expect_error([&] { w.add("t", DType::F32, {4}, x, 16); }, {"tensor t", "added twice"});
  expect_error([&] { w.add("__metadata__", DType::F32, {4}, x, 16); }, {"__metadata__"});
}

// ---------------------------------------------------------------------------------------
// Malformed files, built byte by byte

TEST(SafetensorsMalformed, TooSmallForHeaderLength) {
  const std::string path = temp_folder("small") + "/s.safetensors";
  write_bytes(path, "abc");
  expect_file_error(path, {"at least 8 bytes", "got 3"});
}

TEST(SafetensorsMalformed, HeaderLengthBeyondFile) {
  const std::string path = temp_folder("hlen") + "/h.safetensors";
  raw_file(path, R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4, 1000);
  expect_file_error(path, {"header length 1000 exceeds the file size"});
}

TEST(SafetensorsMalformed, InvalidJson) {
  const std::string path = temp_folder("json") + "/j.safetensors";
  raw_file(path, R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]})", 4);  // missing }
  expect_file_error(path, {"invalid JSON"});
  raw_file(path, "[1, 2]", 0);
  expect_file_error(path, {"expected the header to be a JSON object, got array"});
}

TEST(SafetensorsMalformed, NonObjectEntry) {
  const std::string path = temp_folder("nonobj") + "/n.safetensors";
  raw_file(path, R"({"weird":[1,2,3]})", 0);
  expect_file_error(path, {"tensor weird", "expected an object"});
  raw_file(path, R"({"t":{"dtype":"F32","shape":[1]}})", 4);
  expect_file_error(path, {"tensor t", "data_offsets"});
  raw_file(path, R"({"__metadata__":{"format":1}})", 0);
  expect_file_error(path, {"__metadata__ key format", "expected a string"});
}

TEST(SafetensorsMalformed, UnknownDtype) {
  const std::string path = temp_folder("dtype") + "/d.safetensors";
  raw_file(path, R"({"w":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}})", 4);
  expect_file_error(path, {"tensor w", "F8_E4M3"});
}

TEST(SafetensorsMalformed, ShapeSizeMismatch) {
  const std::string path = temp_folder("shape") + "/s.safetensors";
  raw_file(path, R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})", 20);
  expect_file_error(path, {"tensor w", "expected 24 bytes", "[2, 3]", "20 bytes"});
  raw_file(path, R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4);
  expect_file_error(path, {"tensor w", "non-negative"});
  raw_file(path, R"({"w":{"dtype":"F32","shape":[4611686018427387904,8],"data_offsets":[0,4]}})", 4);
  expect_file_error(path, {"tensor w", "too large"});
}

TEST(SafetensorsMalformed, TruncatedFile) {
  const std::string dir = temp_folder("trunc");
  const float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  SafetensorsWriter w;
  w.add("a", DType::F32, {4}, x, 16);
  w.add("b", DType::F32, {4}, x + 4, 16);
  w.write(dir + "/full.safetensors");
  const std::string bytes = read_text_file(dir + "/full.safetensors");
  write_bytes(dir + "/cut.safetensors", bytes.substr(0, bytes.size() - 4));
  expect_file_error(dir + "/cut.safetensors", {"tensor b", "run past the end", "truncated"});
}

TEST(SafetensorsMalformed, Overlap) {
  const std::string path = temp_folder("overlap") + "/o.safetensors";
  raw_file(path,
           R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
           R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
           12);
  expect_file_error(path, {"tensor b", "overlap tensor a"});
}

TEST(SafetensorsMalformed, HoleBetweenTensors) {
  const std::string path = temp_folder("hole") + "/h.safetensors";
  raw_file(path,
           R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
           R"("b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}})",
           20);
  expect_file_error(path, {"tensor b", "hole of 4 unused bytes"});
  raw_file(path, R"({"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12);
  expect_file_error(path, {"tensor b", "expected data to start at offset 0"});
}

TEST(SafetensorsMalformed, UnusedTrailingBytes) {
  const std::string path = temp_folder("trail") + "/t.safetensors";
  raw_file(path, R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 12);
  expect_file_error(path, {"4 unused trailing bytes"});
}

TEST(SafetensorsMalformed, DuplicateNames) {
  const std::string path = temp_folder("dup") + "/d.safetensors";
  raw_file(path,
           R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
           R"("a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
           16);
  expect_file_error(path, {"tensor a", "listed twice"});
}

// ---------------------------------------------------------------------------------------
// Sharded checkpoints

TEST(SafetensorsSharded, WritesShardsAndIndexAndReadsThemBack) {
  const std::string dir = temp_folder("sharded");
  std::vector<std::vector<float>> data;
  SafetensorsWriter w;
  for (int i = 0; i < 5; ++i) {
    data.push_back(test_values(size_t(10 + i)));
    w.add("layer." + std::to_string(i) + ".weight", DType::F32, {10 + i}, data.back().data(), data.back().size() * 4);
  }
  w.set_metadata({{"format", "pt"}});
  // 100-byte shards: 40+44 fit, 48 starts a new shard, and so on.
  const auto written = w.write_sharded(dir, 100);
  ASSERT_EQ(written.size(), 4u);
  EXPECT_EQ(written[0], "model-00001-of-00003.safetensors");
  EXPECT_EQ(written[2], "model-00003-of-00003.safetensors");
  EXPECT_EQ(written[3], "model.safetensors.index.json");

  const auto index = nlohmann::json::parse(read_text_file(dir + "/model.safetensors.index.json"));
  EXPECT_EQ(index["metadata"]["total_size"].get<uint64_t>(), w.total_bytes());
  EXPECT_EQ(index["weight_map"]["layer.0.weight"], "model-00001-of-00003.safetensors");
  EXPECT_EQ(index["weight_map"]["layer.2.weight"], "model-00002-of-00003.safetensors");

  for (const std::string& open_path : {dir, dir + "/model.safetensors.index.json"}) {
    const SafetensorsSet set = SafetensorsSet::open(open_path);
    EXPECT_EQ(set.source(), dir + "/model.safetensors.index.json");
    EXPECT_EQ(set.files().size(), 3u);
    ASSERT_EQ(set.tensors().size(), 5u);
    EXPECT_EQ(set.metadata().at("format"), "pt");
    for (int i = 0; i < 5; ++i) {
      const TensorView* v = set.find("layer." + std::to_string(i) + ".weight");
      ASSERT_NE(v, nullptr);
      EXPECT_EQ(read_as_floats(*v), data[size_t(i)]);
    }
  }
}

TEST(SafetensorsSharded, OneShardIsAPlainFile) {
  const std::string dir = temp_folder("oneshard");
  const float x[2] = {1, 2};
  SafetensorsWriter w;
  w.add("t", DType::F32, {2}, x, 8);
  EXPECT_EQ(w.write_sharded(dir, 1000), std::vector<std::string>{"model.safetensors"});
  EXPECT_FALSE(file_exists(dir + "/model.safetensors.index.json"));
  const SafetensorsSet set = SafetensorsSet::open(dir);
  EXPECT_EQ(set.source(), dir + "/model.safetensors");
  EXPECT_NE(set.find("t"), nullptr);
  expect_error([&] { w.write_sharded(dir, 0); }, {dir, "positive maximum shard size"});
}

// A folder holding only a pickled checkpoint is refused without reading it (unpickling can run
// code from the file), with how to convert it.
TEST(SafetensorsSharded, PickleOnlyFolderIsRefusedUnread) {
  const std::string dir = temp_folder("pickle");
  write_bytes(dir + "/pytorch_model.bin", "\x80\x02cos\nsystem\n");
  expect_error([&] { SafetensorsSet::open(dir); }, {dir, "pytorch_model.bin", "never loads", "safe_serialization=True"});
  std::filesystem::remove(dir + "/pytorch_model.bin");
  expect_error([&] { SafetensorsSet::open(dir); }, {dir, "found neither"});
}

TEST(SafetensorsSharded, InvalidIndexesAreRejected) {
  const std::string dir = temp_folder("badindex");
  const float x[2] = {1, 2};
  SafetensorsWriter a, b;
  a.add("a", DType::F32, {2}, x, 8);
  b.add("b", DType::F32, {2}, x, 8);
  a.write(dir + "/s1.safetensors");
  b.write(dir + "/s2.safetensors");
  const std::string index = dir + "/model.safetensors.index.json";
  auto write_index = [&](const std::string& weight_map) {
    write_bytes(index, R"({"metadata":{"total_size":16},"weight_map":)" + weight_map + "}");
  };

  write_index(R"({"a":"s1.safetensors","b":"s2.safetensors"})");
  EXPECT_EQ(SafetensorsSet::open(dir).tensors().size(), 2u);

  write_index(R"({"a":"s1.safetensors","b":"missing.safetensors"})");
  expect_error([&] { SafetensorsSet::open(dir); }, {index, "missing.safetensors", "tensor b", "not found"});

  write_index(R"({"a":"s1.safetensors","b":"s2.safetensors","c":"s2.safetensors"})");
  expect_error([&] { SafetensorsSet::open(dir); }, {dir + "/s2.safetensors", "tensor c", "absent from this shard"});

  // A shard holding a tensor the index does not list.
  SafetensorsWriter ab;
  ab.add("a", DType::F32, {2}, x, 8);
  ab.add("extra", DType::F32, {2}, x, 8);
  ab.write(dir + "/s3.safetensors");
  write_index(R"({"a":"s3.safetensors"})");
  expect_error([&] { SafetensorsSet::open(dir); }, {dir + "/s3.safetensors", "tensor extra", "not listed in " + index});

  write_index(R"({"a":"s1.safetensors","b":"s1.safetensors"})");
  expect_error([&] { SafetensorsSet::open(dir); }, {"tensor b"});

  write_index(R"({"a":"s1.safetensors","b":"s3.safetensors"})");
  expect_error([&] { SafetensorsSet::open(dir); }, {dir + "/s3.safetensors", "tensor a", "places it in s1.safetensors"});

  write_bytes(index, R"({"weight_map": 3})");
  expect_error([&] { SafetensorsSet::open(dir); }, {index, "weight_map"});
  write_bytes(index, "{not json");
  expect_error([&] { SafetensorsSet::open(dir); }, {index, "invalid JSON"});
  write_index(R"({"a":"../s1.safetensors"})");
  expect_error([&] { SafetensorsSet::open(dir); }, {index, "tensor a", "../s1.safetensors"});

  const std::string empty = temp_folder("noweights");
  expect_error([&] { SafetensorsSet::open(empty); }, {empty, "model.safetensors", "found neither"});
}

// ---------------------------------------------------------------------------------------
// Parity with an independent implementation: a short stdlib + torch Python writer/reader
// following the spec (the `safetensors` package is not installed on the build machine).

namespace {

const char* kPythonSafetensors = R"PY(
import json, struct, sys, torch
DT = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I64": torch.int64, "I32": torch.int32}
def values(n, dtype):
    if dtype.is_floating_point:
        return (torch.arange(n, dtype=torch.float32) * 0.25 - 1).to(dtype)
    return torch.arange(n, dtype=torch.int64).mul(-3).add(7).to(dtype)
def raw(t):  # little-endian bytes of a tensor, bf16 included (numpy has no bf16)
    return t.contiguous().view(torch.int16 if t.dtype in (torch.float16, torch.bfloat16) else t.dtype).numpy().tobytes()
mode, path = sys.argv[1], sys.argv[2]
if mode == "write":  # unpadded header, tensors deliberately not in name order in the data
    tensors = {"w.f32": values(6, torch.float32).reshape(2, 3), "a.f16": values(5, torch.float16),
               "b.bf16": values(4, torch.bfloat16).reshape(2, 2), "i.i64": values(3, torch.int64),
               "j.i32": values(3, torch.int32)}
    header, data = {"__metadata__": {"writer": "python"}}, b""
    for name in ["w.f32", "j.i32", "a.f16", "i.i64", "b.bf16"]:
        t = tensors[name]
        b = raw(t)
        header[name] = {"dtype": [k for k, v in DT.items() if v == t.dtype][0], "shape": list(t.shape),
                        "data_offsets": [len(data), len(data) + len(b)]}
        data += b
    h = json.dumps(header).encode()
    open(path, "wb").write(struct.pack("<Q", len(h)) + h + data)
else:  # read a file gemkit wrote and check it against the same values
    blob = open(path, "rb").read()
    n = struct.unpack("<Q", blob[:8])[0]
    assert (8 + n) % 8 == 0, "data not 8-byte aligned"
    header = json.loads(blob[8:8 + n])
    assert header.pop("__metadata__") == {"writer": "gemkit"}
    names = sorted(header)
    assert [header[k]["data_offsets"][0] for k in names] == sorted(header[k]["data_offsets"][0] for k in names)
    for name, info in header.items():
        dt = DT[info["dtype"]]
        b, e = info["data_offsets"]
        chunk = bytearray(blob[8 + n + b: 8 + n + e])
        st = torch.int16 if dt in (torch.float16, torch.bfloat16) else dt
        t = torch.frombuffer(chunk, dtype=st).view(dt).reshape(info["shape"])
        numel = 1
        for d in info["shape"]: numel *= d
        expect = values(numel, dt).reshape(info["shape"])
        assert torch.equal(t, expect), (name, t, expect)
    print("python reader: OK", len(header), "tensors")
)PY";

std::string python_script(const std::string& dir) {
  const std::string path = dir + "/safetensors_spec.py";
  write_bytes(path, kPythonSafetensors);
  return path;
}

}  // namespace

TEST(SafetensorsPython, ReadsFileWrittenByIndependentWriter) {
  const std::string dir = temp_folder("pywrite");
  const std::string file = dir + "/py.safetensors";
  ASSERT_EQ(run_python(python_script(dir), "write " + file), 0);

  const SafetensorsFile st(file);
  EXPECT_EQ(st.metadata().at("writer"), "python");
  ASSERT_EQ(st.tensors().size(), 5u);
  EXPECT_EQ(st.tensors()[0].name, "w.f32");  // file order, not name order
  EXPECT_EQ(st.at("w.f32").shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(read_as_floats(st.at("w.f32")), test_values(6));
  EXPECT_EQ(read_as_floats(st.at("a.f16")), test_values(5));
  EXPECT_EQ(st.at("b.bf16").dtype, DType::BF16);
  EXPECT_EQ(read_as_floats(st.at("b.bf16")), test_values(4));
  const int64_t* i64 = reinterpret_cast<const int64_t*>(st.at("i.i64").data);
  EXPECT_EQ(std::vector<int64_t>(i64, i64 + 3), (std::vector<int64_t>{7, 4, 1}));
  int32_t i32[3];
  std::memcpy(i32, st.at("j.i32").data, 12);  // may be unaligned: the python header is unpadded
  EXPECT_EQ(std::vector<int32_t>(i32, i32 + 3), (std::vector<int32_t>{7, 4, 1}));
}

TEST(SafetensorsPython, IndependentReaderParsesOurFile) {
  const std::string dir = temp_folder("pyread");
  const std::string file = dir + "/ours.safetensors";
  const std::vector<float> f32 = test_values(6);
  std::vector<uint16_t> f16, bf16;
  for (float x : test_values(5)) f16.push_back(f16_bits(x));
  for (float x : test_values(4)) bf16.push_back(bf16_bits(x));
  const std::vector<int64_t> i64 = {7, 4, 1};
  const std::vector<int32_t> i32 = {7, 4, 1, -2};
  SafetensorsWriter w;
  w.add("w.f32", DType::F32, {3, 2}, f32.data(), 24);
  w.add("a.f16", DType::F16, {5}, f16.data(), 10);
  w.add("b.bf16", DType::BF16, {2, 2}, bf16.data(), 8);
  w.add("i.i64", DType::I64, {3}, i64.data(), 24);
  w.add("j.i32", DType::I32, {4}, i32.data(), 16);
  w.set_metadata({{"writer", "gemkit"}});
  w.write(file);
  EXPECT_EQ(run_python(python_script(dir), "read " + file), 0);
}
