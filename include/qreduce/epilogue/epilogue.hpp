// qreduce/epilogue/epilogue.hpp: what the all-reduce kernels ask of an epilogue.
//
// An epilogue is an object the kernels take by value (trivially copyable) with
//   __device__ void operator()(T* out, std::size_t n, std::size_t i, const float (&v)[8]) const
// called with the f32 sums of values [i, i+8) of the n: it decides what is written (identity.hpp
// writes them as T). A row-wise epilogue (rmsnorm.hpp) also declares `static constexpr bool row_pass`
// and has
//   std::size_t row_values() const                 (host and device: the values of a row)
//   __device__ void row(std::size_t r) const        (row r, by every thread of one block)
// and the communicator launches a kernel of rows after the all-reduce (algorithm::rows_kernel) that
// calls row() for every row once its values were handed over. An optional
// `static constexpr std::uint32_t call_id` names it in a call's signature (algorithm/signature.hpp).
// An optional
//   __device__ void store_rounded(T* out, std::size_t n, std::size_t i, const uint4& v) const
// takes values [i, i+8) already rounded to T (four pairs), where a codec decodes straight to T
// (identity.hpp: the kernels skip the f32 values). Its n is a bound, not the tensor's size: values
// from n on are not written; the two-shot passes i + 8 where it knows the 8 values lie inside the
// tensor (algorithm/two_shot.hpp, split_bounds), so that the store tests nothing.
//
// The concepts check what the host can see: the device calls (operator(), row()) are checked where
// the kernels make them (clang's HIP passes do not see a __device__ member as callable from the host
// functions that launch the kernels, even in a requires-expression).
#pragma once
#include <concepts>
#include <cstddef>
#include <type_traits>
#include "../numeric/float16.hpp"

namespace qreduce::epilogue {

template <class E, class T>
concept epilogue_for = std::is_trivially_copyable_v<E> &&(std::is_same_v<T, f16> || std::is_same_v<T, bf16>);

template <class E, class T>
concept row_epilogue_for = epilogue_for<E, T> && requires(const E& e) {
  { E::row_pass } -> std::convertible_to<bool>;
  { e.row_values() } -> std::convertible_to<std::size_t>;
};

}  // namespace qreduce::epilogue
