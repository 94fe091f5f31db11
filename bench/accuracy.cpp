// qreduce_accuracy: the codec accuracy table, on the CPU (no GPU needed).
//
// For each codec, the relative L2 error and the largest absolute error of a W-rank two-shot
// all-reduce (the host reference of the GPUs' arithmetic, codec bytes included) against the fp64 sum, on three
// kinds of data: Gaussian, heavy-tailed (Student t, 3 degrees of freedom), and LLM-like activations
// (Gaussian with a few outlier channels 20-100x larger). With and without the Hadamard rotation, and
// beside a model of QuickReduce's scheme (scale absmax/qmax rounded to nearest fp16, partial sums and
// the second quantization in fp16) as the reference to beat.
// The last lines compare the best 4.5-bit codec with the better of the two QuickReduce models per
// data kind; --svg draws error against bits per value, one point per codec and data kind.
//   qreduce_accuracy [--world W] [--values N] [--csv FILE] [--markdown FILE] [--svg FILE]
#include <cmath>
#include <cstdio>
#include <algorithm>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>
#include "qreduce/codec/all.hpp"
#include "qreduce/options.hpp"

using namespace qreduce;

namespace {

enum class data_kind { gaussian, heavy_tailed, outlier_channels };
const char* data_name(data_kind d) {
  return d == data_kind::gaussian ? "gaussian" : d == data_kind::heavy_tailed ? "heavy-tailed" : "outlier-channels";
}

std::vector<std::vector<float>> make_data(data_kind d, int world, std::size_t n, std::uint64_t seed) {
  std::vector<std::vector<float>> v(static_cast<std::size_t>(world), std::vector<float>(n));
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> g;
  std::student_t_distribution<float> t(3.0f);
  std::vector<float> channel_gain(4096, 1.0f);
  for (std::size_t c = 0; c < channel_gain.size(); c += 97) channel_gain[c] = 20.0f + float(c % 81);
  for (auto& r : v)
    for (std::size_t i = 0; i < n; ++i) {
      float x = d == data_kind::heavy_tailed ? t(rng) : g(rng);
      if (d == data_kind::outlier_channels) x *= channel_gain[i % channel_gain.size()];
      r[i] = numeric::to_float(numeric::to_f16(x));  // what an fp16 tensor holds
    }
  return v;
}

struct stats {
  double rel_l2, max_abs;
};

stats compare(const std::vector<std::vector<float>>& in, const std::vector<float>& got) {
  double num = 0, den = 0, mx = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    double s = 0;
    for (const auto& r : in) s += r[i];
    const double d = std::fabs(double(got[i]) - s);
    num += d * d;
    den += s * s;
    mx = std::max(mx, d);
  }
  return {std::sqrt(num / den), mx};
}

// qreduce's two-shot with the kernels' arithmetic (fp16 tensors): the owner of each segment adds its
// own values unquantized. Segments here are one tile each; a call's segments are K tiles (its plan),
// so the owner of a value, and with it the exact bytes, can differ from a given call's: the error
// statistics do not.
template <class C>
std::vector<float> qreduce_two_shot(const std::vector<std::vector<float>>& in, bool rotate) {
  const std::size_t n = in[0].size(), W = in.size();
  std::vector<float> out(n);
  std::byte payload[C::payload_bytes], scale[C::scale_bytes > 0 ? C::scale_bytes : 1];
  rotate = rotate || codec::always_rotated<C>;
  for (std::size_t g0 = 0; g0 < n; g0 += codec::group_size) {
    float acc[codec::group_size] = {}, x[codec::group_size], y[codec::group_size];
    for (std::size_t r = 0; r < W; ++r) {
      std::copy(&in[r][g0], &in[r][g0] + codec::group_size, x);
      if (rotate) codec::rotate_group<C>(x);
      if ((g0 / codec::tile_values) % W != r) {
        codec::encode_group<C, f16>(x, payload, scale);
        codec::decode_group<C, f16>(payload, scale, x);
      }
      for (int i = 0; i < codec::group_size; ++i) acc[i] += x[i];
    }
    codec::encode_group<C, f16>(acc, payload, scale);
    if (rotate) codec::decode_rotated_group<C, f16>(payload, scale, y);
    else codec::decode_group<C, f16>(payload, scale, y);
    for (int i = 0; i < codec::group_size; ++i) out[g0 + i] = numeric::to_float(numeric::to_f16(y[i]));
  }
  return out;
}

// QuickReduce's scheme, modelled: per 32 values, scale = fp16(absmax / qmax) (nearest), values
// x / scale rounded by the format and saturated, decoded in fp16; partial sums added in fp16; the sum
// re-quantized the same way.
template <class F>
std::vector<float> quickreduce_model(const std::vector<std::vector<float>>& in) {
  auto h = [](float x) { return numeric::to_float(numeric::to_f16(x)); };
  auto quant = [&](const float* v, float* y) {
    float am = 0;
    for (int i = 0; i < 32; ++i) am = std::max(am, std::fabs(v[i]));
    const float s = h(am / F::max);
    for (int i = 0; i < 32; ++i) {
      const float q = s > 0 ? F::decode_soft(F::encode_soft(h(v[i] / s))) : 0.0f;
      y[i] = h(q * s);
    }
  };
  const std::size_t n = in[0].size();
  std::vector<float> out(n);
  for (std::size_t g0 = 0; g0 < n; g0 += 32) {
    float acc[32] = {}, y[32];
    for (const auto& r : in) {
      quant(&r[g0], y);
      for (int i = 0; i < 32; ++i) acc[i] = h(acc[i] + y[i]);
    }
    quant(acc, y);
    for (int i = 0; i < 32; ++i) out[g0 + i] = y[i];
  }
  return out;
}

struct point {
  std::string codec;
  bool rotated, reference, plotted;  // reference: a QuickReduce model
  data_kind data;
  double bits, rel_l2;
};

// Error against bits per value, a panel per data kind, log error axis: the trade at a glance.
void write_svg(std::ostream& f, const std::vector<point>& pts, int world, std::size_t n) {
  const data_kind kinds[] = {data_kind::gaussian, data_kind::heavy_tailed, data_kind::outlier_channels};
  double lo = 1e300, hi = 0;
  for (const auto& p : pts)
    if (p.rel_l2 > 0) lo = std::min(lo, p.rel_l2), hi = std::max(hi, p.rel_l2);
  const double y0 = std::floor(std::log10(lo)), y1 = std::ceil(std::log10(hi));
  const int pw = 330, ph = 460, ml = 60, mt = 62, gap = 30, W = ml + 3 * pw + 2 * gap + 20, H = mt + ph + 60;
  auto X = [&](int panel, double bits) { return ml + panel * (pw + gap) + (bits - 4.0) / (16.5 - 4.0) * pw; };
  auto Y = [&](double e) { return mt + (y1 - std::log10(e)) / (y1 - y0) * ph; };
  f << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H << "\" font-family=\"sans-serif\" font-size=\"11\">\n"
    << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    << "<text x=\"" << ml << "\" y=\"18\" font-size=\"14\">Relative L2 error against bits per value: " << world << "-rank two-shot, " << n
    << " fp16 values per rank, vs the fp64 sum</text>\n"
    << "<text x=\"" << ml
    << "\" y=\"34\">CPU, the exact arithmetic of the device kernels. Dots: qreduce codecs as configured by default "
       "(blue: 4-4.5 bits); red crosses: the QuickReduce model.</text>\n";
  for (int k = 0; k < 3; ++k) {
    const double px = X(k, 4.0);
    f << "<rect x=\"" << px << "\" y=\"" << mt << "\" width=\"" << pw << "\" height=\"" << ph << "\" fill=\"none\" stroke=\"#888\"/>\n"
      << "<text x=\"" << px + pw / 2.0 << "\" y=\"" << mt - 8 << "\" text-anchor=\"middle\" font-size=\"13\">" << data_name(kinds[k]) << "</text>\n"
      << "<text x=\"" << px + pw / 2.0 << "\" y=\"" << mt + ph + 35 << "\" text-anchor=\"middle\">bits per value on the wire</text>\n";
    for (int b = 4; b <= 16; b += 2)
      f << "<line x1=\"" << X(k, b) << "\" y1=\"" << mt + ph << "\" x2=\"" << X(k, b) << "\" y2=\"" << mt + ph + 5 << "\" stroke=\"#888\"/>"
        << "<text x=\"" << X(k, b) << "\" y=\"" << mt + ph + 17 << "\" text-anchor=\"middle\">" << b << "</text>\n";
    for (double e = y0; e <= y1; e += 1)
      f << "<line x1=\"" << px << "\" y1=\"" << Y(std::pow(10, e)) << "\" x2=\"" << px + pw << "\" y2=\"" << Y(std::pow(10, e))
        << "\" stroke=\"#eee\"/>"
        << (k == 0 ? "<text x=\"" + std::to_string(int(px) - 5) + "\" y=\"" + std::to_string(int(Y(std::pow(10, e))) + 4) +
                         "\" text-anchor=\"end\">1e" + std::to_string(int(e)) + "</text>"
                   : "")
        << "\n";
    // labels to the right of their points; points of equal bits (the 4.5-bit cluster) get their labels
    // stacked top to bottom, a line to each moved label
    std::vector<const point*> panel;
    for (const auto& p : pts)
      if (p.data == kinds[k] && p.rel_l2 > 0 && p.plotted) panel.push_back(&p);
    // a cluster: the points of one whole number of bits (4.25 and 4.5 together)
    std::sort(panel.begin(), panel.end(),
              [](const point* a, const point* b) { return std::floor(a->bits) != std::floor(b->bits) ? a->bits < b->bits : a->rel_l2 > b->rel_l2; });
    double last_bits = -1, last_y = -1e9;
    for (const point* p : panel) {
      const double x = X(k, p->bits), y = Y(p->rel_l2);
      const char* color = p->reference ? "#c0392b" : p->bits < 5 ? "#1f6fb2" : "#333";
      if (p->reference) f << "<path d=\"M" << x - 4 << "," << y - 4 << "l8,8m-8,0l8,-8\" stroke=\"" << color << "\" stroke-width=\"2\"/>";
      else f << "<circle cx=\"" << x << "\" cy=\"" << y << "\" r=\"3.5\" fill=\"" << color << "\"/>";
      const double ly = std::floor(p->bits) == std::floor(last_bits) ? std::max(y, last_y + 12) : y;
      const double lx = ly != y ? X(k, std::floor(p->bits)) + 40 : x + 7;
      if (ly != y) f << "<line x1=\"" << x + 4 << "\" y1=\"" << y << "\" x2=\"" << lx - 2 << "\" y2=\"" << ly - 4 << "\" stroke=\"#bbb\"/>";
      f << "<text x=\"" << lx << "\" y=\"" << ly << "\" fill=\"" << color << "\">" << p->codec << (p->rotated ? " +rot" : "") << "</text>\n";
      last_bits = p->bits;
      last_y = ly;
    }
  }
  f << "</svg>\n";
}

}  // namespace

int usage(std::FILE* to, int status) {
  std::fprintf(to,
               "usage: qreduce_accuracy [--world W] [--values N] [--csv FILE] [--markdown FILE] [--svg FILE]\n"
               "  --world W      ranks of the simulated two-shot: %s (default 4)\n"
               "  --values N     values per rank, a positive multiple of 32 up to 2^26 (default 1048576)\n"
               "  --csv FILE     also write the table as CSV;  --markdown FILE  as a Markdown table\n"
               "  --svg FILE     also draw error against bits per value (one point per codec and data kind)\n"
               "The relative L2 and largest absolute error of each codec's all-reduce (the GPUs' arithmetic, codec\n"
               "bytes included) against the fp64 sum, on the CPU, beside a model of QuickReduce's scheme.\n",
               all_worlds::names().c_str());
  return status;
}

int main(int argc, char** argv) {
  int world = 4;
  std::size_t n = 1 << 20;
  std::string csv, md, svg;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") return usage(stdout, 0);
    if (a != "--world" && a != "--values" && a != "--csv" && a != "--markdown" && a != "--svg") {
      std::fprintf(stderr, "qreduce_accuracy: unknown option %s\n", a.c_str());
      return usage(stderr, 2);
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "qreduce_accuracy: %s needs a value\n", a.c_str());
      return usage(stderr, 2);
    }
    const std::string v = argv[++i];
    if (a == "--world") {
      const auto w = parse_unsigned(v);
      if (!w || !all_worlds::contains(int(*w > 64 ? 0 : *w))) {
        std::fprintf(stderr, "qreduce_accuracy: --world %s: expected one of %s\n", v.c_str(), all_worlds::names().c_str());
        return 2;
      }
      world = int(*w);
    } else if (a == "--values") {
      const auto x = parse_unsigned(v);
      if (!x || *x == 0 || *x % 32 != 0 || *x > (1u << 26)) {
        std::fprintf(stderr, "qreduce_accuracy: --values %s: expected a positive multiple of 32 up to 67108864\n", v.c_str());
        return 2;
      }
      n = std::size_t(*x);
    } else {
      (a == "--csv" ? csv : a == "--svg" ? svg : md) = v;
    }
  }
  std::ofstream fc, fm, fs;
  if (!svg.empty()) {
    fs.open(svg);
    if (!fs) {
      std::fprintf(stderr, "qreduce_accuracy: cannot write %s\n", svg.c_str());
      return 1;
    }
  }
  if (!csv.empty()) {
    fc.open(csv);
    if (!fc) {
      std::fprintf(stderr, "qreduce_accuracy: cannot write %s\n", csv.c_str());
      return 1;
    }
    fc << "codec,rotation,data,bits_per_value,rel_l2,max_abs_err\n";
  }
  if (!md.empty()) {
    fm.open(md);
    if (!fm) {
      std::fprintf(stderr, "qreduce_accuracy: cannot write %s\n", md.c_str());
      return 1;
    }
    fm << "# Codec accuracy: " << world << "-rank two-shot all-reduce of " << n << " fp16 values per rank vs the fp64 sum (CPU)\n\n"
       << "| codec | data | bits/value | rel. L2 | max abs err |\n|---|---|---|---|---|\n";
  }
  std::printf("qreduce codec accuracy: %d-rank two-shot all-reduce of %zu fp16 values vs the fp64 sum (CPU)\n", world, n);
  std::printf("%-18s %-16s %10s %11s %10s\n", "codec", "data", "bits/value", "rel. L2", "max |err|");
  std::vector<point> pts;
  auto row = [&](const std::string& name, bool rot, data_kind d, double bits, stats s, bool plotted = true) {
    pts.push_back({name, rot, name.rfind("quickreduce", 0) == 0, plotted, d, bits, s.rel_l2});
    const std::string label = name + (rot ? " +rot" : "");
    std::printf("%-18s %-16s %10.2f %11.3e %10.3e\n", label.c_str(), data_name(d), bits, s.rel_l2, s.max_abs);
    std::fflush(stdout);
    if (fc) fc << name << "," << (rot ? 1 : 0) << "," << data_name(d) << "," << bits << "," << s.rel_l2 << "," << s.max_abs << "\n";
    if (fm) fm << "| " << label << " | " << data_name(d) << " | " << bits << " | " << s.rel_l2 << " | " << s.max_abs << " |\n";
  };
  for (data_kind d : {data_kind::gaussian, data_kind::heavy_tailed, data_kind::outlier_channels}) {
    const auto in = make_data(d, world, n, 17);
    for (codec_kind k : all_codecs)
      for (bool rot : {false, true}) {
        visit_codec(k, [&](auto tag) {
          using C = typename decltype(tag)::type;
          // rotation is a choice for the quantizing codecs that do not always rotate
          if (rot && (k == codec_kind::none || codec::always_rotated<C>)) return;
          // the plot shows each codec as configured by default: rotated only if it always rotates
          row(C::name, rot || codec::always_rotated<C>, d, codec::bits_per_value<C>, compare(in, qreduce_two_shot<C>(in, rot)), !rot);
        });
      }
    row("quickreduce-fp4", false, d, 4.5, compare(in, quickreduce_model<numeric::e2m1>(in)));
    row("quickreduce-int4", false, d, 4.5, compare(in, quickreduce_model<numeric::int_format<4>>(in)));
    row("quickreduce-int8", false, d, 8.5, compare(in, quickreduce_model<numeric::int_format<8>>(in)));
  }
  // The 4.5-bit class against the better QuickReduce model of the same bits, per data kind.
  std::printf("\n4.5-bit class: the lowest error of a qreduce codec (any rotation) against the better QuickReduce model\n");
  for (data_kind d : {data_kind::gaussian, data_kind::heavy_tailed, data_kind::outlier_channels}) {
    const point* ours = nullptr;
    const point* theirs = nullptr;
    for (const auto& p : pts)
      if (p.data == d && p.bits == 4.5) {
        const point*& best = p.reference ? theirs : ours;
        if (!best || p.rel_l2 < best->rel_l2) best = &p;
      }
    std::printf("  %-16s %s%s %.4f vs %s %.4f: %.2fx lower\n", data_name(d), ours->codec.c_str(), ours->rotated ? " +rot" : "", ours->rel_l2,
                theirs->codec.c_str(), theirs->rel_l2, theirs->rel_l2 / ours->rel_l2);
    if (fm)
      fm << "\n4.5-bit class, " << data_name(d) << ": " << ours->codec << (ours->rotated ? " +rot" : "") << " " << ours->rel_l2 << " vs "
         << theirs->codec << " " << theirs->rel_l2 << ": " << theirs->rel_l2 / ours->rel_l2 << "x lower\n";
  }
  if (fs) write_svg(fs, pts, world, n);
  return 0;
}
