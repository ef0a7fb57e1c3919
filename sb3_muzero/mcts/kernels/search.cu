// Batched MuZero tree search: the kernels of the CUDA backend (sb3_muzero/mcts/backends/cuda.py).
//
// One thread per tree. Every kernel and helper mirrors its Numba counterpart in
// sb3_muzero/mcts/backends/cpu.py operation for operation, in float64 and in the same order, and
// follows the semantics written down in sb3_muzero/mcts/search.py.
//
// Exactness. Compile without fast math and with --fmad=false: contracting a * b + c into one fused
// multiply-add rounds once instead of twice and changes results. Division and comparisons are IEEE
// on the device as on the host. The exploration factors (log, sqrt) come from a table computed on the
// host by the CPU backend's own function, so they are bit-identical. The one difference left is exp():
// CUDA's double exp is not glibc's and can differ from it in the last bit, so a prior can differ from
// the CPU backend's by an ulp. Visit counts, values and actions still agree with the reference search
// on the golden trees of the test suite; exact ties between priors that differ only in the last bit
// are the case where an ulp could decide differently.
//
// Layout. Tree arrays are dense and row-major as described in sb3_muzero/mcts/types.py (Tree):
// [B, N] node statistics, [B, N, A] children statistics. The kernels receive the address of each
// array through TreeArrays, an array of pointers in device memory, in the order of Tree's fields.
//
// The source compiles as CUDA (NVRTC through CuPy, or nvcc) and, with host_shim.h included first,
// as plain C++ (g++), which lets the tests run every kernel on the CPU, one thread after another.
// It includes no header, as NVRTC provides none.

// The addresses of a batch of trees' arrays, in the order of the fields of types.Tree.
struct TreeArrays {
    int* node_visits;            // [B, N]
    double* node_value_sum;      // [B, N]
    double* node_reward;         // [B, N]
    int* parent;                 // [B, N]
    int* action_from_parent;     // [B, N]
    int* children_index;         // [B, N, A]
    double* children_prior;      // [B, N, A]
    int* children_visits;        // [B, N, A]
    double* children_q;          // [B, N, A]
    double* children_prior_term; // [B, N, A]
    int* visited_actions;        // [B, N, A]
    int* num_visited;            // [B, N]
    int* best_unvisited;         // [B, N]
    bool* root_legal;            // [B, A]
    double* min_max;             // [B, 2]
    int* leaf_parent;            // [B]
    long long* leaf_action;      // [B]
};

namespace mcts {

// One tree's rows of the batch arrays: index [node], [node * A + a] or [a] instead of [b, ...].
struct TreeRows {
    int* node_visits;            // [N]
    double* node_value_sum;      // [N]
    double* node_reward;         // [N]
    int* parent;                 // [N]
    int* action_from_parent;     // [N]
    int* children_index;         // [N, A]
    double* children_prior;      // [N, A]
    int* children_visits;        // [N, A]
    double* children_q;          // [N, A]
    double* children_prior_term; // [N, A]
    int* visited_actions;        // [N, A]
    int* num_visited;            // [N]
    int* best_unvisited;         // [N]
    bool* root_legal;            // [A]
    double* min_max;             // [2]
    int num_actions;

    __device__ int child(int node, int action) const { return node * num_actions + action; }
};

__device__ TreeRows tree_rows(const TreeArrays* arrays, int b, int num_nodes, int num_actions) {
    const long long nodes = (long long)b * num_nodes;
    const long long children = nodes * num_actions;
    TreeRows tree;
    tree.node_visits = arrays->node_visits + nodes;
    tree.node_value_sum = arrays->node_value_sum + nodes;
    tree.node_reward = arrays->node_reward + nodes;
    tree.parent = arrays->parent + nodes;
    tree.action_from_parent = arrays->action_from_parent + nodes;
    tree.children_index = arrays->children_index + children;
    tree.children_prior = arrays->children_prior + children;
    tree.children_visits = arrays->children_visits + children;
    tree.children_q = arrays->children_q + children;
    tree.children_prior_term = arrays->children_prior_term + children;
    tree.visited_actions = arrays->visited_actions + children;
    tree.num_visited = arrays->num_visited + nodes;
    tree.best_unvisited = arrays->best_unvisited + nodes;
    tree.root_legal = arrays->root_legal + (long long)b * num_actions;
    tree.min_max = arrays->min_max + 2LL * b;
    tree.num_actions = num_actions;
    return tree;
}

__device__ double positive_infinity() { return __longlong_as_double(0x7ff0000000000000LL); }

// prior[a] = softmax of logits over the legal actions (all actions unless is_root), 0 for illegal ones.
// [A] -> [A]; returns the legal action of largest prior, lowest index on ties.
template <typename Real>
__device__ int _write_priors(const Real* logits, const bool* legal, bool is_root, double* prior, int num_actions) {
    double largest = -positive_infinity();
    for (int a = 0; a < num_actions; ++a) {
        if ((!is_root || legal[a]) && (double)logits[a] > largest) {
            largest = (double)logits[a];
        }
    }
    double total = 0.0;
    for (int a = 0; a < num_actions; ++a) {
        if (!is_root || legal[a]) {
            prior[a] = exp((double)logits[a] - largest);
            total += prior[a];
        } else {
            prior[a] = 0.0;
        }
    }
    const double inverse_total = 1.0 / total;
    int best_action = -1;
    double best_prior = -1.0;
    for (int a = 0; a < num_actions; ++a) {
        prior[a] = prior[a] * inverse_total;
        if ((!is_root || legal[a]) && prior[a] > best_prior) {
            best_prior = prior[a];
            best_action = a;
        }
    }
    return best_action;
}

// Set best_unvisited of node: the unvisited (at the root: legal) child of largest prior, or -1.
__device__ void _find_best_unvisited(const TreeRows& tree, int node) {
    int best_action = -1;
    double best_prior = -1.0;  // below every prior
    for (int a = 0; a < tree.num_actions; ++a) {
        const bool unvisited = tree.children_index[tree.child(node, a)] < 0 && (node != 0 || tree.root_legal[a]);
        const double prior = unvisited ? tree.children_prior[tree.child(node, a)] : -1.0;
        if (prior > best_prior) {
            best_prior = prior;
            best_action = a;
        }
    }
    tree.best_unvisited[node] = best_action;
}

// Write the row of a new, unvisited node and link it to its parent. The caller writes children_prior
// first and passes its best (legal) action as best_child. Children statistics are written when a
// child is first visited, so only children_index is reset.
__device__ void _create_node(const TreeRows& tree, int node, int parent, int action, double reward, int best_child) {
    tree.parent[node] = parent;
    tree.action_from_parent[node] = action;
    tree.node_reward[node] = reward;
    tree.node_visits[node] = 0;
    tree.node_value_sum[node] = 0.0;
    tree.num_visited[node] = 0;
    tree.best_unvisited[node] = best_child;
    for (int a = 0; a < tree.num_actions; ++a) {
        tree.children_index[tree.child(node, a)] = -1;
    }
    if (parent >= 0) {
        tree.children_index[tree.child(parent, action)] = node;
        tree.visited_actions[tree.child(parent, tree.num_visited[parent])] = action;
        tree.num_visited[parent] += 1;
        _find_best_unvisited(tree, parent);
    }
}

// The action of largest PUCT score at node, lowest index on ties. Scores only the candidates: the
// visited children and the best unvisited one (see backends/cpu.py).
__device__ int _puct_action(const TreeRows& tree, int node, double exploration, double q_min, double q_scale) {
    int best_action = tree.best_unvisited[node];
    double best_score = -positive_infinity();
    if (best_action >= 0) {
        best_score = exploration * tree.children_prior[tree.child(node, best_action)] + 0.0;
    }
    for (int k = 0; k < tree.num_visited[node]; ++k) {
        const int a = tree.visited_actions[tree.child(node, k)];
        const double value_score = (tree.children_q[tree.child(node, a)] - q_min) * q_scale;
        const double score = exploration * tree.children_prior_term[tree.child(node, a)] + value_score;
        const bool better = score > best_score || (score == best_score && a < best_action);
        best_score = better ? score : best_score;
        best_action = better ? a : best_action;
    }
    return best_action;
}

// Walk the tree from the root by PUCT to the first unexpanded child; write its parent and action.
__device__ void _select_leaf(const TreeRows& tree, const double* exploration_table, int* leaf_parent,
                             long long* leaf_action) {
    double q_min = tree.min_max[0];
    const double q_max = tree.min_max[1];
    double q_scale;
    if (q_max > q_min) {
        q_scale = 1.0 / (q_max - q_min);
    } else {  // no range yet: every value term is 0
        q_min = 0.0;
        q_scale = 0.0;
    }
    int node = 0;
    int action;
    while (true) {
        action = _puct_action(tree, node, exploration_table[tree.node_visits[node]], q_min, q_scale);
        const int child = tree.children_index[tree.child(node, action)];
        if (child < 0) {
            break;
        }
        node = child;
    }
    *leaf_parent = node;
    *leaf_action = action;
}

// Add the discounted return to every node from leaf up to the root; widen the tree's Q range.
__device__ void _backup(const TreeRows& tree, int leaf, double value, double discount) {
    double q_min = tree.min_max[0];
    double q_max = tree.min_max[1];
    double backed_up = value;
    int node = leaf;
    while (true) {
        tree.node_value_sum[node] += backed_up;
        tree.node_visits[node] += 1;
        if (node == 0) {
            break;
        }
        const double reward = tree.node_reward[node];
        const int visits = tree.node_visits[node];
        const double q = reward + discount * (tree.node_value_sum[node] / (double)visits);
        q_min = q < q_min ? q : q_min;  // Python's min and max, as in Numba
        q_max = q > q_max ? q : q_max;
        const int parent = tree.parent[node];
        const int action = tree.action_from_parent[node];
        tree.children_visits[tree.child(parent, action)] = visits;
        tree.children_q[tree.child(parent, action)] = q;
        tree.children_prior_term[tree.child(parent, action)] =
            tree.children_prior[tree.child(parent, action)] / (double)(1 + visits);
        backed_up = reward + discount * backed_up;
        node = parent;
    }
    tree.min_max[0] = q_min;
    tree.min_max[1] = q_max;
}

// One simulation step for tree b: create new_node under the selected leaf from the model's output,
// back its value up and, if select_next, select the leaf of the next simulation.
template <typename Real>
__device__ void expand_backup_select_tree(const TreeArrays* arrays, int b, int num_nodes, int num_actions, int new_node,
                                          const Real* new_reward, const Real* new_value, const Real* new_logits,
                                          double discount, const double* exploration_table, int select_next) {
    const TreeRows tree = tree_rows(arrays, b, num_nodes, num_actions);
    const int best_child = _write_priors(new_logits + (long long)b * num_actions, tree.root_legal, false,
                                         tree.children_prior + tree.child(new_node, 0), num_actions);
    _create_node(tree, new_node, arrays->leaf_parent[b], (int)arrays->leaf_action[b], (double)new_reward[b], best_child);
    _backup(tree, new_node, (double)new_value[b], discount);
    if (select_next) {
        _select_leaf(tree, exploration_table, arrays->leaf_parent + b, arrays->leaf_action + b);
    }
}

// The most visited action, lowest index on ties. [A] -> action
__device__ long long _most_visited(const int* visit_counts, int num_actions) {
    int best_action = 0;
    for (int a = 1; a < num_actions; ++a) {
        if (visit_counts[a] > visit_counts[best_action]) {
            best_action = a;
        }
    }
    return best_action;
}

// An action sampled with probability proportional to its weight, as search.choose_action does: the
// number of cumulative weights <= uniform * total, but never past the last action of positive weight.
// weights[c] is the weight of an action visited c times (the row of the visit-weight table for the
// row's largest count). [A] -> action
__device__ long long _sample_visited(const int* visit_counts, int num_actions, const double* weights, double uniform) {
    double total = 0.0;
    int last_visited = num_actions - 1;
    for (int a = 0; a < num_actions; ++a) {
        total += weights[visit_counts[a]];
    }
    for (int a = num_actions - 1; a >= 0; --a) {
        if (weights[visit_counts[a]] > 0.0) {
            last_visited = a;
            break;
        }
    }
    const double threshold = uniform * total;
    double cumulative = 0.0;
    int action = 0;
    for (int a = 0; a < num_actions; ++a) {
        cumulative += weights[visit_counts[a]];
        action += cumulative <= threshold ? 1 : 0;
    }
    return action < last_visited ? action : last_visited;
}

}  // namespace mcts

// Write the root (node 0) of every tree, priors with noise and one visit carrying the network value;
// then select the leaves of the first simulation.
// prior_logits [B, A], root_value [B], legal [B, A], noise [B, A] (read only if noise_fraction > 0),
// exploration_table [N + 1].
extern "C" __global__ void init_roots_and_select(const TreeArrays* arrays, int batch_size, int num_nodes, int num_actions,
                                                 const double* prior_logits, const double* root_value, const bool* legal,
                                                 const double* noise, double noise_fraction,
                                                 const double* exploration_table) {
    const int b = blockIdx.x * blockDim.x + threadIdx.x;
    if (b >= batch_size) {
        return;
    }
    const mcts::TreeRows tree = mcts::tree_rows(arrays, b, num_nodes, num_actions);
    const long long row = (long long)b * num_actions;
    for (int a = 0; a < num_actions; ++a) {
        tree.root_legal[a] = legal[row + a];
        tree.children_visits[tree.child(0, a)] = 0;
        tree.children_q[tree.child(0, a)] = 0.0;
    }
    const int best_child = mcts::_write_priors(prior_logits + row, legal + row, true, tree.children_prior, num_actions);
    mcts::_create_node(tree, 0, -1, -1, 0.0, best_child);
    if (noise_fraction > 0.0) {
        for (int a = 0; a < num_actions; ++a) {
            if (legal[row + a]) {
                const double mixed = tree.children_prior[a] * (1.0 - noise_fraction) + noise[row + a] * noise_fraction;
                tree.children_prior[a] = mixed;
            }
        }
        mcts::_find_best_unvisited(tree, 0);
    }
    tree.node_visits[0] = 1;
    tree.node_value_sum[0] = root_value[b];
    tree.min_max[0] = mcts::positive_infinity();
    tree.min_max[1] = -mcts::positive_infinity();
    mcts::_select_leaf(tree, exploration_table, arrays->leaf_parent + b, arrays->leaf_action + b);
}

// One simulation step for every tree (see expand_backup_select_tree), with the model's outputs in
// float32 or float64: new_reward [B], new_value [B], new_logits [B, A]; exploration_table [N + 1].
extern "C" __global__ void expand_backup_select_f32(const TreeArrays* arrays, int batch_size, int num_nodes,
                                                    int num_actions, int new_node, const float* new_reward,
                                                    const float* new_value, const float* new_logits, double discount,
                                                    const double* exploration_table, int select_next) {
    const int b = blockIdx.x * blockDim.x + threadIdx.x;
    if (b < batch_size) {
        mcts::expand_backup_select_tree(arrays, b, num_nodes, num_actions, new_node, new_reward, new_value, new_logits,
                                        discount, exploration_table, select_next);
    }
}

extern "C" __global__ void expand_backup_select_f64(const TreeArrays* arrays, int batch_size, int num_nodes,
                                                    int num_actions, int new_node, const double* new_reward,
                                                    const double* new_value, const double* new_logits, double discount,
                                                    const double* exploration_table, int select_next) {
    const int b = blockIdx.x * blockDim.x + threadIdx.x;
    if (b < batch_size) {
        mcts::expand_backup_select_tree(arrays, b, num_nodes, num_actions, new_node, new_reward, new_value, new_logits,
                                        discount, exploration_table, select_next);
    }
}

// Root statistics of every tree: child visits out_visits [B, A], root value out_value [B] and child Q
// out_q [B, A] (0 if unvisited).
extern "C" __global__ void read_root(const TreeArrays* arrays, int batch_size, int num_nodes, int num_actions,
                                     int* out_visits, double* out_value, double* out_q) {
    const int b = blockIdx.x * blockDim.x + threadIdx.x;
    if (b >= batch_size) {
        return;
    }
    const mcts::TreeRows tree = mcts::tree_rows(arrays, b, num_nodes, num_actions);
    const long long row = (long long)b * num_actions;
    out_value[b] = tree.node_value_sum[0] / (double)tree.node_visits[0];
    for (int a = 0; a < num_actions; ++a) {
        out_visits[row + a] = tree.children_visits[tree.child(0, a)];
        out_q[row + a] = tree.children_q[tree.child(0, a)];
    }
}

// One action per tree from its root visit counts [B, A], as search.choose_action: the most visited
// action if not sample, else a sample with uniforms [B] (drawn on the host) and the visit-weight table
// [num_simulations, num_simulations + 1], whose row m - 1 holds the weight of every count when the
// row's largest count is m. Writes action [B].
extern "C" __global__ void choose_actions(const int* visit_counts, int batch_size, int num_actions, int sample,
                                          const double* uniforms, const double* weight_table, int num_simulations,
                                          long long* action) {
    const int b = blockIdx.x * blockDim.x + threadIdx.x;
    if (b >= batch_size) {
        return;
    }
    const int* counts = visit_counts + (long long)b * num_actions;
    if (!sample) {
        action[b] = mcts::_most_visited(counts, num_actions);
        return;
    }
    int most = counts[0];
    for (int a = 1; a < num_actions; ++a) {
        most = counts[a] > most ? counts[a] : most;
    }
    const double* weights = weight_table + (long long)(most - 1) * (num_simulations + 1);
    action[b] = mcts::_sample_visited(counts, num_actions, weights, uniforms[b]);
}
