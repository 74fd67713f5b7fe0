// The cached sampler's loop (pixelcnn/sampling/cached.py, DESIGN §4) in C++: the torch
// operator pixelcnn_native::sample_rows, called by pixelcnn/sampling/native.py.
//
// It reads the packed weights of pixelcnn/packing.py and reads and writes the buffers of
// GatedCache (same shapes and meaning), so a call carries on where the previous one stopped.
// One parallel region (at::parallel_for over torch's threads) runs the whole call: the batch
// is cut into blocks of images, one per team of threads (Team), and each team runs its
// images through every row (vertical stacks) and every sub-pixel (horizontal stacks, head,
// sample) on the raw-array kernels of kernels.h, with no allocation or dispatch in the loop.
// At batch >= threads each thread is a team of its own and never waits for another; at a
// smaller batch the threads of a team share each product.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <deque>
#include <vector>

#include "kernels.h"
#include "team.h"

namespace pixelcnn_native {
namespace {

using at::Tensor;

// The operator's arguments; sizes as in packing.py (L layers, H hidden, p = k // 2, E
// embedded features per sub-pixel, D channels of the conditioning map: 0 without one).
struct Args {
  Tensor wv, wlink, wh_prev, wh_cur, wres, bres, wskip, bskip, w1, b1, w2, b2;
  Tensor table;                                      // [C, levels, E]: the input embedding
  Tensor wmap;                                       // [L, D, 4H] or empty
  Tensor bias_v, bias_h;                             // [L, B, 2H]: biases + conditioning
  Tensor cond_map;                                   // [B, D, height, width] or empty
  Tensor vbuf, v_pre, row_bias, hbuf, base, gated;   // GatedCache
  Tensor x, uniforms;                                // [B, C, height, width]
  double temperature;
  int64_t start;
  int64_t B, C, height, width, L, H, p, levels, E, D;
};

// Sizes and raw pointers of the weights and the GatedCache buffers, shared by all threads.
template <typename T>
struct Net {
  explicit Net(const Args& a)
      : B(a.B), C(a.C), height(a.height), W(a.width), L(a.L), H(a.H), p(a.p), k(2 * a.p + 1),
        levels(a.levels), start(a.start), E(a.E), F(a.C * a.E), D(a.D),
        // layer 0's vertical input is the embedded image: only its first F channels are
        // non-zero
        wv0_(a.wv[0].view({-1, H, 2 * H}).narrow(1, 0, F).contiguous()),
        // the map image row by image row, [B, height, W, D]: a product's row-major input
        cmap_(D ? a.cond_map.permute({0, 2, 3, 1}).contiguous() : Tensor()), wv(ptr(a.wv)),
        wv0(ptr(wv0_)), wlink(ptr(a.wlink)), wh_prev(ptr(a.wh_prev)), wh_cur(ptr(a.wh_cur)),
        wres(ptr(a.wres)), bres(ptr(a.bres)), wskip(ptr(a.wskip)), bskip(ptr(a.bskip)),
        w1(ptr(a.w1)), b1(ptr(a.b1)), w2(ptr(a.w2)), b2(ptr(a.b2)), table(ptr(a.table)),
        wmap(D ? ptr(a.wmap) : nullptr), u(ptr(a.uniforms)), cmap(D ? ptr(cmap_) : nullptr),
        bias_v_(ptr(a.bias_v)), bias_h_(ptr(a.bias_h)), vbuf_(ptr(a.vbuf)),
        v_pre_(ptr(a.v_pre)), row_bias_(ptr(a.row_bias)), hbuf_(ptr(a.hbuf)),
        base_(ptr(a.base)), gated_(ptr(a.gated)), x(a.x.data_ptr<int64_t>()),
        inv_temperature(T(1) / T(a.temperature)), kernels(best_kernels<T>()) {}

  static T* ptr(const Tensor& t) { return t.data_ptr<T>(); }
  int64_t index(int64_t b, int64_t c, int64_t i, int64_t j) const {  // x, u: [B, C, height, W]
    return ((b * C + c) * height + i) * W + j;
  }
  // Pixel (i, j) of image b embedded as the table says (pixelcnn.layers.embed_table): F
  // features into out, channel c's E first (the scalar embedding is the table with E = 1).
  void embed(int64_t b, int64_t i, int64_t j, T* out) const {
    for (int64_t c = 0; c < C; ++c) {
      const T* row = table + (c * levels + x[index(b, c, i, j)]) * E;
      std::copy(row, row + E, out + c * E);
    }
  }
  const T* cond_row(int64_t b, int64_t i) const {  // the map's image row i, [W, D]
    return cmap + (b * height + i) * W * D;
  }
  const T* bias_v(int64_t l, int64_t b) const { return bias_v_ + (l * B + b) * 2 * H; }
  const T* bias_h(int64_t l, int64_t b) const { return bias_h_ + (l * B + b) * 2 * H; }
  T* vbuf(int64_t l, int64_t b, int64_t slot, int64_t col) const {  // [L, B, p+1, W+2p, H]
    return vbuf_ + (((l * B + b) * (p + 1) + slot) * (W + 2 * p) + col) * H;
  }
  T* v_pre(int64_t l, int64_t b) const { return v_pre_ + (l * B + b) * W * 2 * H; }
  T* row_bias(int64_t l, int64_t b, int64_t j) const {  // [L, B, W, 2H]
    return row_bias_ + ((l * B + b) * W + j) * 2 * H;
  }
  T* hbuf(int64_t l, int64_t b, int64_t col) const {  // [L, B, p+W, H]
    return hbuf_ + ((l * B + b) * (p + W) + col) * H;
  }
  T* base(int64_t l, int64_t b) const { return base_ + (l * B + b) * 2 * H; }  // [L, B, 2H]
  T* gated(int64_t b, int64_t l) const { return gated_ + (b * L + l) * H; }    // [B, L, H]

  const int64_t B, C, height, W, L, H, p, k, levels, start, E, F, D;
  const Tensor wv0_, cmap_;
  const T *wv, *wv0, *wlink, *wh_prev, *wh_cur, *wres, *bres, *wskip, *bskip, *w1, *b1, *w2,
      *b2, *table, *wmap, *u, *cmap, *bias_v_, *bias_h_;
  T *vbuf_, *v_pre_, *row_bias_, *hbuf_, *base_, *gated_;
  int64_t* x;
  const T inv_temperature;
  const Kernels<T> kernels;
};

// One team's images b0 .. b1 - 1 through rows of the image: GatedCache.row, begin_pixel,
// step, logits and end_pixel, and the inverse-CDF sample, the products split over the team.
//
// The masks keep the colour groups of hidden units apart: group g of every layer sees the
// pixel's channels < g only, and the logits of channel c see groups <= c only. So the step
// for channel c computes group c alone, from groups <= c (groups < c are final since the
// previous channel's step), and the head likewise: for RGB, 1/3 of the columns and on average
// 2/3 of the rows of a full step, three times per pixel instead of nine thirds. After the
// last channel every group is computed and the caches are as GatedCache leaves them.
template <typename T>
class Block {
 public:
  Block(const Net<T>& net, Team& team, int64_t b0, int64_t b1)
      : n_(net), k_(net.kernels), team_(team), b0_(b0), M_(b1 - b0), pixel_(M_ * net.F),
        pre_(M_ * 2 * net.H), skip_(M_ * net.H), hidden_(M_ * net.H), logits_(M_ * net.levels),
        probs_(net.levels), map_(net.D ? net.L * M_ * net.W * 4 * net.H : 0) {}

  void run(int64_t row_begin, int64_t row_end) {
    for (i_ = row_begin; i_ < row_end; ++i_) {
      start_row();
      if (i_ < n_.start / n_.W) continue;  // completion: rows before the start row are x0's
      for (int64_t j = 0; j < n_.W; ++j) pixel(j);
    }
  }

 private:
  // fn(n0, n1) over blocks of the columns [begin, end), one block per thread (multiples of 16).
  template <typename F>
  void columns(int64_t begin, int64_t end, const F& fn) {
    const int64_t per = 16 * team_.members(), size = (end - begin + per - 1) / per * 16;
    team_.run((end - begin + size - 1) / size, [&](int64_t chunk) {
      fn(begin + chunk * size, std::min(end, begin + (chunk + 1) * size));
    });
  }

  // Copy one row into M rows of out, ld apart.
  static void broadcast(int64_t M, int64_t N, const T* row, T* out, int64_t ld) {
    for (int64_t m = 0; m < M; ++m) std::copy(row, row + N, out + m * ld);
  }

  // Start row i (GatedCache.row): push the image row above into the ring of each layer's
  // last p + 1 vertical inputs (image row r in slot r % (p + 1)), run the vertical stacks
  // over it, and through the links set the horizontal stacks' pre-activation from above.
  // A conditioning map's contributions (row_maps) come last in each sum, as in cache.py.
  void start_row() {
    const int64_t H = n_.H, W = n_.W, p = n_.p, k = n_.k, L = n_.L;
    if (n_.D) row_maps();
    if (i_ == 0) {
      for (int64_t l = 0; l < L; ++l)
        for (int64_t b = b0_; b < b0_ + M_; ++b) {
          std::fill(n_.vbuf(l, b, 0, 0), n_.vbuf(l, b, p + 1, 0), T(0));
          broadcast(W, 2 * H, n_.bias_h(l, b), n_.row_bias(l, b, 0), 2 * H);
          add_map(l, b, 2 * H, 2 * H, n_.row_bias(l, b, 0));
        }
      return;
    }
    const int64_t slot = (i_ - 1) % (p + 1);
    for (int64_t b = b0_; b < b0_ + M_; ++b)
      for (int64_t j = 0; j < W; ++j) n_.embed(b, i_ - 1, j, n_.vbuf(0, b, slot, p + j));
    for (int64_t l = 0; l < L; ++l) {
      // the window of output column j: kernel row r reads ring slot (i + r) % (p + 1) at
      // columns j .. j + k - 1, all channels contiguous (k cin of them, rows H apart); layer
      // 0 reads its F embedded features column by column
      const int64_t cin = l == 0 ? n_.F : H, taps = l == 0 ? k : 1, K = l == 0 ? n_.F : k * H;
      const T* w = l == 0 ? n_.wv0 : n_.wv + l * (p + 1) * k * H * 2 * H;
      columns(0, H, [&](int64_t n0, int64_t n1) {
        for (int64_t b = b0_; b < b0_ + M_; ++b) {
          T* pre = n_.v_pre(l, b);  // [W, 2H]
          for (int64_t half : {n0, H + n0}) {  // tanh and sigmoid pre-activations
            broadcast(W, n1 - n0, n_.bias_v(l, b) + half, pre + half, 2 * H);
            for (int64_t r = 0; r <= p; ++r)
              for (int64_t t = 0; t < taps; ++t)
                k_.matmul_acc(W, n1 - n0, K, n_.vbuf(l, b, (i_ + r) % (p + 1), t), H,
                              w + (r * k + t) * cin * 2 * H + half, 2 * H, pre + half, 2 * H);
            add_map(l, b, half, n1 - n0, pre + half);
          }
          if (l + 1 < L)  // the next layer's vertical input
            for (int64_t j = 0; j < W; ++j)
              k_.gate(n1 - n0, pre + j * 2 * H + n0, pre + j * 2 * H + H + n0,
                      n_.vbuf(l + 1, b, slot, p + j) + n0);
        }
      });
    }
    team_.run(L, [&](int64_t l) {  // the links, a layer per chunk
      for (int64_t b = b0_; b < b0_ + M_; ++b) {
        broadcast(W, 2 * H, n_.bias_h(l, b), n_.row_bias(l, b, 0), 2 * H);
        k_.matmul_acc(W, 2 * H, 2 * H, n_.v_pre(l, b), 2 * H, n_.wlink + l * 4 * H * H, 2 * H,
                      n_.row_bias(l, b, 0), 2 * H);
        add_map(l, b, 2 * H, 2 * H, n_.row_bias(l, b, 0));
      }
    });
  }

  // The conditioning map's contributions to this row (packing.map_biases), [W, 4H] per layer
  // and image, a layer per chunk: the vertical stack's (2H) from image row i - 1, the row it
  // now runs over, the horizontal stack's (2H) from row i. Each is a product of its own,
  // added to a finished sum (add_map), so that float64 rounds as cache.py does.
  void row_maps() {
    const int64_t W = n_.W, D = n_.D, N = 2 * n_.H;
    team_.run(n_.L, [&](int64_t l) {
      const T* w = n_.wmap + l * D * 2 * N;
      for (int64_t m = 0; m < M_; ++m) {
        T* out = &map_[(l * M_ + m) * W * 2 * N];
        std::fill(out, out + W * 2 * N, T(0));
        if (i_ > 0)
          k_.matmul_acc(W, N, D, n_.cond_row(b0_ + m, i_ - 1), D, w, 2 * N, out, 2 * N);
        k_.matmul_acc(W, N, D, n_.cond_row(b0_ + m, i_), D, w + N, 2 * N, out + N, 2 * N);
      }
    });
  }

  // out[j, :N] += columns col .. col + N - 1 of the map's [W, 4H] (layer l, image b), j < W,
  // out's rows 2H apart (v_pre, row_bias); nothing without a map.
  void add_map(int64_t l, int64_t b, int64_t col, int64_t N, T* out) const {
    if (!n_.D) return;
    const int64_t H = n_.H;
    const T* from = &map_[(l * M_ + b - b0_) * n_.W * 4 * H] + col;
    for (int64_t j = 0; j < n_.W; ++j)
      for (int64_t n = 0; n < N; ++n) out[j * 2 * H + n] += from[j * 4 * H + n];
  }

  // Pixel (i, j): its sub-pixels in order, or with x0's pixel (completion) the caches only.
  void pixel(int64_t j) {
    begin_pixel(j);
    const bool given = i_ * n_.W + j < n_.start;
    for (int64_t c = 0; c < n_.C; ++c) {
      step(j, c);
      if (given) continue;
      head(c);
      for (int64_t m = 0; m < M_; ++m) {
        const int64_t sub = n_.index(b0_ + m, c, i_, j);
        n_.x[sub] = k_.inverse_cdf(n_.levels, &logits_[m * n_.levels], n_.inv_temperature,
                                   n_.u[sub], probs_.data());
      }
    }
    end_pixel(j);
  }

  // base[l] = row_bias[l, :, j] + the horizontal taps j - p .. j - 1, a layer per chunk.
  void begin_pixel(int64_t j) {
    const int64_t H = n_.H, p = n_.p;
    team_.run(n_.L, [&](int64_t l) {
      for (int64_t m = 0; m < M_; ++m)
        std::copy(n_.row_bias(l, b0_ + m, j), n_.row_bias(l, b0_ + m, j) + 2 * H,
                  n_.base(l, b0_ + m));
      const int64_t cin = l == 0 ? n_.F : H;  // layer 0: the F embedded features, then zeros
      for (int64_t tap = 0; tap < p; ++tap)
        k_.matmul_acc(M_, 2 * H, cin, n_.hbuf(l, b0_, j + tap), (p + n_.W) * H,
                      n_.wh_prev + (l * p + tap) * H * 2 * H, 2 * H, n_.base(l, b0_), 2 * H);
    });
  }

  // Colour group c of every layer's horizontal stack at (i, j): its gated units, and its part
  // of each layer's input (the previous layer's residual output) into hbuf.
  void step(int64_t j, int64_t c) {
    const int64_t H = n_.H, L = n_.L, g0 = c * H / n_.C, g1 = (c + 1) * H / n_.C;
    const int64_t ld = (n_.p + n_.W) * H;  // hbuf's stride between images
    for (int64_t m = 0; m < M_; ++m)       // layer 0's input: the pixel so far
      n_.embed(b0_ + m, i_, j, &pixel_[m * n_.F]);
    for (int64_t l = 0; l < L; ++l) {
      const T* in = l == 0 ? pixel_.data() : n_.hbuf(l, b0_, j + n_.p);
      const int64_t ld_in = l == 0 ? n_.F : ld, K = l == 0 ? n_.F : g1;
      const T* w = n_.wh_cur + l * H * 2 * H;
      columns(g0, g1, [&](int64_t n0, int64_t n1) {
        for (int64_t half : {n0, H + n0}) {  // tanh and sigmoid pre-activations
          for (int64_t m = 0; m < M_; ++m)
            std::copy(n_.base(l, b0_ + m) + half, n_.base(l, b0_ + m) + half + n1 - n0,
                      &pre_[m * 2 * H + half]);
          k_.matmul_acc(M_, n1 - n0, K, in, ld_in, w + half, 2 * H, &pre_[half], 2 * H);
        }
        for (int64_t m = 0; m < M_; ++m)
          k_.gate(n1 - n0, &pre_[m * 2 * H + n0], &pre_[m * 2 * H + H + n0],
                  n_.gated(b0_ + m, l) + n0);
      });
      if (l + 1 == L) break;
      T* next = n_.hbuf(l + 1, b0_, j + n_.p);
      columns(g0, g1, [&](int64_t n0, int64_t n1) {  // residual (none around layer 0)
        for (int64_t m = 0; m < M_; ++m)
          for (int64_t n = n0; n < n1; ++n)
            next[m * ld + n] = (l == 0 ? T(0) : in[m * ld + n]) + n_.bres[l * H + n];
        k_.matmul_acc(M_, n1 - n0, g1, n_.gated(b0_, l), L * H, n_.wres + l * H * H + n0, H,
                      next + n0, ld);
      });
    }
  }

  // The head at the current sub-pixel: skip and hidden units of group c (groups < c are kept
  // from the pixel's previous channels), then logits_ [M, levels] of channel c.
  void head(int64_t c) {
    const int64_t H = n_.H, g0 = c * H / n_.C, g1 = (c + 1) * H / n_.C, levels = n_.levels;
    const auto relu = [&](T* out, int64_t n0, int64_t n1) {
      for (int64_t m = 0; m < M_; ++m)
        for (int64_t n = n0; n < n1; ++n) out[m * H + n] = std::max(out[m * H + n], T(0));
    };
    columns(g0, g1, [&](int64_t n0, int64_t n1) {
      broadcast(M_, n1 - n0, n_.bskip + n0, &skip_[n0], H);
      for (int64_t l = 0; l < n_.L; ++l)
        k_.matmul_acc(M_, n1 - n0, g1, n_.gated(b0_, l), n_.L * H, n_.wskip + l * H * H + n0,
                      H, &skip_[n0], H);
      relu(skip_.data(), n0, n1);
    });
    columns(g0, g1, [&](int64_t n0, int64_t n1) {
      broadcast(M_, n1 - n0, n_.b1 + n0, &hidden_[n0], H);
      k_.matmul_acc(M_, n1 - n0, g1, skip_.data(), H, n_.w1 + n0, H, &hidden_[n0], H);
      relu(hidden_.data(), n0, n1);
    });
    columns(0, levels, [&](int64_t v0, int64_t v1) {
      broadcast(M_, v1 - v0, n_.b2 + c * levels + v0, &logits_[v0], levels);
      k_.matmul_acc(M_, v1 - v0, g1, hidden_.data(), H, n_.w2 + c * levels + v0,
                    n_.C * levels, &logits_[v0], levels);
    });
  }

  // The pixel is complete: it becomes the first layer's horizontal input at column j.
  void end_pixel(int64_t j) {
    for (int64_t m = 0; m < M_; ++m) n_.embed(b0_ + m, i_, j, n_.hbuf(0, b0_ + m, j + n_.p));
  }

  const Net<T>& n_;
  const Kernels<T>& k_;
  Team& team_;
  const int64_t b0_, M_;
  int64_t i_ = 0;  // the current row
  std::vector<T> pixel_, pre_, skip_, hidden_, logits_, probs_;  // [M, F], [M, 2H], [M, H], ...
  std::vector<T> map_;  // row_maps: [L, M, W, 4H], empty without a conditioning map
};

// A thread per block of images while the batch allows, min(B, threads) teams; at a smaller
// batch, and hidden >= kTeamHidden (below, a product is too small to share), the threads
// left over join the teams as helpers.
constexpr int64_t kTeamHidden = 96;

template <typename T>
void run(const Net<T>& net, int64_t row_begin, int64_t row_end) {
  const int64_t threads = at::get_num_threads(), teams = std::min(net.B, threads);
  const int64_t members = net.H >= kTeamHidden ? threads / teams : 1;
  std::deque<Team> team;
  for (int64_t t = 0; t < teams; ++t) team.emplace_back(members);
  at::parallel_for(0, teams * members, 1, [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; ++s) {  // a team's leader before its helpers
      Team& mine = team[s / members];
      if (s % members) {
        mine.help();
        continue;
      }
      const int64_t t = s / members;
      struct Finish {
        Team& team;
        ~Finish() { team.finish(); }
      } finish{mine};
      Block<T>(net, mine, t * net.B / teams, (t + 1) * net.B / teams).run(row_begin, row_end);
    }
  });
}

// The map and its 1x1s: both given (D > 0) or both empty; the map in any layout.
void check_map(const Args& a) {
  if (a.D == 0) {
    TORCH_CHECK(a.cond_map.numel() == 0 && a.wmap.numel() == 0,
                "pixelcnn_native: cond_map must be [B, D, height, width] with wmap "
                "[L, D, 4H], or both empty");
    return;
  }
  TORCH_CHECK(a.cond_map.scalar_type() == a.wv.scalar_type() && a.cond_map.device().is_cpu() &&
                  a.cond_map.sizes() == at::IntArrayRef({a.B, a.D, a.height, a.width}),
              "pixelcnn_native: cond_map must be a CPU ", a.wv.scalar_type(), " tensor [B, D, ",
              a.height, ", ", a.width, "], got ", a.cond_map.sizes());
  TORCH_CHECK(a.wmap.scalar_type() == a.wv.scalar_type() && a.wmap.is_contiguous() &&
                  a.wmap.device().is_cpu() &&
                  a.wmap.sizes() == at::IntArrayRef({a.L, a.D, 4 * a.H}),
              "pixelcnn_native: wmap must be a contiguous CPU tensor [L, D, 4H] = [", a.L,
              ", ", a.D, ", ", 4 * a.H, "], got ", a.wmap.sizes());
}

void check(const Args& a) {
  const auto dtype = a.wv.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble,
              "pixelcnn_native: float32 or float64 weights, got ", dtype);
  for (const Tensor* t : {&a.wv, &a.wlink, &a.wh_prev, &a.wh_cur, &a.wres, &a.bres, &a.wskip,
                          &a.bskip, &a.w1, &a.b1, &a.w2, &a.b2, &a.table, &a.bias_v, &a.bias_h,
                          &a.vbuf, &a.v_pre, &a.row_bias, &a.hbuf, &a.base, &a.gated,
                          &a.uniforms})
    TORCH_CHECK(t->scalar_type() == dtype && t->is_contiguous() && t->device().is_cpu(),
                "pixelcnn_native: every tensor must be a contiguous CPU ", dtype, " tensor");
  TORCH_CHECK(a.x.scalar_type() == at::kLong && a.x.is_contiguous() && a.x.dim() == 4,
              "pixelcnn_native: x must be a contiguous long tensor [B, C, H, W]");
  TORCH_CHECK(a.uniforms.sizes() == a.x.sizes(), "pixelcnn_native: uniforms must match x");
  TORCH_CHECK(a.hbuf.dim() == 4 && a.hbuf.size(0) == a.L && a.hbuf.size(1) == a.B &&
                  a.hbuf.size(2) == a.p + a.width && a.hbuf.size(3) == a.H,
              "pixelcnn_native: the cache does not match the weights and x: set it up with "
              "GatedCache(...).setup(B, H, W)");
  TORCH_CHECK(a.table.dim() == 3 && a.table.size(0) == a.C && a.table.size(1) == a.levels &&
                  a.C * a.E <= a.H,
              "pixelcnn_native: table must be [C, levels, E] with C * E <= hidden");
  check_map(a);
}

// wmap and cond_map: empty tensors for a model without a conditioning map.
void sample_rows(Tensor wv, Tensor wlink, Tensor wh_prev, Tensor wh_cur, Tensor wres,
                 Tensor bres, Tensor wskip, Tensor bskip, Tensor w1, Tensor b1, Tensor w2,
                 Tensor b2, Tensor table, Tensor wmap, Tensor bias_v, Tensor bias_h,
                 Tensor cond_map, Tensor vbuf, Tensor v_pre, Tensor row_bias, Tensor hbuf,
                 Tensor base, Tensor gated, Tensor x, Tensor uniforms, double temperature,
                 int64_t start, int64_t row_begin, int64_t row_end) {
  const int64_t H = wh_cur.size(1);
  Args a{wv, wlink, wh_prev, wh_cur, wres, bres, wskip, bskip, w1, b1, w2, b2, table, wmap,
         bias_v, bias_h, cond_map, vbuf, v_pre, row_bias, hbuf, base, gated, x, uniforms,
         temperature, start, x.size(0), x.size(1), x.size(2), x.size(3), wv.size(0), H,
         wh_prev.size(1) / H, w2.size(1) / x.size(1), table.size(-1),
         cond_map.dim() == 4 ? cond_map.size(1) : 0};
  check(a);
  TORCH_CHECK(0 <= row_begin && row_begin <= row_end && row_end <= a.height,
              "pixelcnn_native: rows out of range");
  AT_DISPATCH_FLOATING_TYPES(wv.scalar_type(), "pixelcnn_native::sample_rows", [&] {
    run(Net<scalar_t>(a), row_begin, row_end);
  });
}

}  // namespace
}  // namespace pixelcnn_native

TORCH_LIBRARY(pixelcnn_native, m) {
  m.def("sample_rows(Tensor wv, Tensor wlink, Tensor wh_prev, Tensor wh_cur, Tensor wres, "
        "Tensor bres, Tensor wskip, Tensor bskip, Tensor w1, Tensor b1, Tensor w2, Tensor b2, "
        "Tensor table, Tensor wmap, Tensor bias_v, Tensor bias_h, Tensor cond_map, "
        "Tensor(a!) vbuf, Tensor(b!) v_pre, "
        "Tensor(c!) row_bias, Tensor(d!) hbuf, Tensor(e!) base, Tensor(f!) gated, "
        "Tensor(g!) x, Tensor uniforms, float temperature, int start, int row_begin, "
        "int row_end) -> ()");
}

TORCH_LIBRARY_IMPL(pixelcnn_native, CPU, m) {
  m.impl("sample_rows", &pixelcnn_native::sample_rows);
}
