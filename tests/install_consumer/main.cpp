#include <cstdio>
#include <qreduce/qreduce.hpp>
int main() {
  // a host-only use of the installed headers: one fp4 group round trip
  float v[32] = {6, -3, 1.5f};
  std::byte payload[16], scale[2];
  qreduce::codec::encode_group<qreduce::codec::fp4, qreduce::f16>(v, payload, scale);
  float out[32];
  qreduce::codec::decode_group<qreduce::codec::fp4, qreduce::f16>(payload, scale, out);
  std::printf("consumer: %g %g %g\n", out[0], out[1], out[2]);
  return out[0] == 6.0f && out[1] == -3.0f && out[2] == 1.5f ? 0 : 1;
}
