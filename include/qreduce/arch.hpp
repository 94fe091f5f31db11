// qreduce/arch.hpp: the architecture numbers of the dispatch table and the creation agreement.
//
// NVIDIA: major * 10 + minor (90 = sm_90, 100 = sm_100). AMD: the digits of the gfx target as a decimal
// number (942 = gfx942, 950 = gfx950, 1100 = gfx1100); a target ending in a letter counts the letter
// as 1..26 after its digits times ten (gfx90a = 901, gfx90c = 903). The two ranges never meet: NVIDIA
// numbers stay below 900, every gfx number of an AMD GPU that runs HIP is above it.
#pragma once
#include <cstddef>
#include <string_view>

namespace qreduce {

// The number of a gfx target name as HIP reports it ("gfx942:sramecc+:xnack-"); 0 if it is not one.
constexpr int gfx_arch_id(std::string_view name) {
  if (name.substr(0, 3) != "gfx") return 0;
  name.remove_prefix(3);
  name = name.substr(0, name.find(':'));
  int digits = 0, letter = 0;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    if (c >= '0' && c <= '9' && letter == 0) digits = digits * 10 + (c - '0');
    else if (c >= 'a' && c <= 'z' && i + 1 == name.size() && i > 0) letter = c - 'a' + 1;
    else return 0;
  }
  if (name.empty()) return 0;
  return letter ? digits * 10 + letter : digits;
}

static_assert(gfx_arch_id("gfx942:sramecc+:xnack-") == 942 && gfx_arch_id("gfx950") == 950 && gfx_arch_id("gfx90a") == 901 &&
              gfx_arch_id("gfx1100") == 1100 && gfx_arch_id("sm_90") == 0 && gfx_arch_id("gfx") == 0);

}  // namespace qreduce
