// Where the trainer's batches come from: an endless, resumable stream of TokenBatch. The
// Loader (data/loader.h) is the real one; tests use small synthetic streams. Header-only and
// torch-free so the trainer does not depend on how batches are made.
#pragma once
#include <cstdint>
#include <string>

#include "data/batch.h"
#include "data/loader.h"

namespace gemkit {

class BatchStream {
 public:
  virtual ~BatchStream() = default;
  virtual TokenBatch next() = 0;
  virtual double epoch() const = 0;              // fractional epochs of the primary source
  virtual int64_t tokens_per_epoch() const = 0;  // of the primary source
  virtual int64_t tokens_per_batch() const = 0;  // rows * seq_len (for budgets and the ETA)
  // The position, as text for the checkpoint, and back: the same batches follow.
  virtual std::string state_json() const = 0;
  virtual void restore(const std::string& json) = 0;
};

class LoaderStream : public BatchStream {
 public:
  explicit LoaderStream(Loader& loader) : loader_(loader) {}
  TokenBatch next() override { return loader_.next(); }
  double epoch() const override { return loader_.epoch(); }
  int64_t tokens_per_epoch() const override { return loader_.tokens_per_epoch(); }
  int64_t tokens_per_batch() const override {
    return loader_.options().batch_size * loader_.options().seq_len;
  }
  std::string state_json() const override { return loader_.state_json(); }
  void restore(const std::string& json) override { loader_.restore(json); }

 private:
  Loader& loader_;
};

}  // namespace gemkit
