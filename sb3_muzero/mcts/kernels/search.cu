// Batched MuZero tree search: the kernels of the CUDA backend (sb3_muzero/mcts/backends/cuda.py).
//
// One thread per tree. Every kernel and helper mirrors its Numba counterpart in
// sb3_muzero/mcts/backends/cpu.py operation for operation, in float64 and in the same order, and
// follows the semantics written down in sb3_muzero/mcts/driver.py.
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
// nodes [B, N] of struct Node, visited [B, N, A] of struct VisitedChild (slot k of a node's row: its
// k-th visited child), unvisited_prior [B, N, A]; Gumbel's raw_value [B, N] and scratch [B, A]. The structs match NODE_DTYPE and VISITED_DTYPE
// there field for field. The kernels receive the address of each array through TreeArrays, an array
// of pointers in device memory, in the order of Tree's fields.
//
// The source compiles as CUDA (NVRTC through CuPy, or nvcc) and, with host_shim.h included first,
// as plain C++ (g++), which lets the tests run every kernel on the CPU, one thread after another.
// It includes no header, as NVRTC provides none.

// One node of a tree (types.NODE_DTYPE): 64 bytes.
struct Node {
    double value_sum;             // W(node)
    double reward;                // r(node)
    double prior;                 // P(parent, a) of the action into the node (0 for the root)
    double best_unvisited_prior;  // the prior of best_unvisited (-1 if none)
    int visits;                   // N(node)
    int parent;                   // -1 for the root
    int slot_in_parent;           // the node's slot in its parent's row of visited (-1 for the root)
    int num_visited;              // slots in use in the node's row of visited
    int best_unvisited;           // unvisited (legal) child of largest prior, -1 if none, PRIORS_PENDING
    int unused[3];
};

// A visited child, in its parent's row in order of first visit (types.VISITED_DTYPE): 32 bytes.
struct VisitedChild {
    double q;           // Q(node, a)
    double prior_term;  // PUCT: P(node, a) / (1 + N(child)); Gumbel: P(node, a)
    int action;         // a
    int child;          // the child's node index
    int visits;         // N(child)
};

// The addresses of a batch of trees' arrays, in the order of the fields of types.Tree.
struct TreeArrays {
    Node* nodes;              // [B, N]
    VisitedChild* visited;    // [B, N, A]
    double* unvisited_prior;  // [B, N, A]
    double* raw_value;        // [B, N], Gumbel only
    double* min_max;          // [B, 2]
    double* scratch;          // [B, A], Gumbel only
    int* leaf_parent;         // [B]
    long long* leaf_action;   // [B]
};

namespace mcts {

const int PRIORS_PENDING = -2;  // types.PRIORS_PENDING: the node's unvisited_prior row holds logits
// Gumbel's constant (types.LOW_SCORE; TINY is tiny() below).
const double LOW_SCORE = -1e9;

// One tree's rows of the batch arrays: index [node] or [node * A + a] instead of [b, ...].
struct TreeRows {
    Node* nodes;              // [N]
    VisitedChild* visited;    // [N, A]
    double* unvisited_prior;  // [N, A]
    double* raw_value;        // [N]
    double* min_max;          // [2]
    double* scratch;          // [A]
    int num_actions;

    __device__ long long row(int node) const { return (long long)node * num_actions; }
};

__device__ TreeRows tree_rows(const TreeArrays* arrays, int b, int num_nodes, int num_actions) {
    const long long nodes = (long long)b * num_nodes;
    TreeRows tree;
    tree.nodes = arrays->nodes + nodes;
    tree.visited = arrays->visited + nodes * num_actions;
    tree.unvisited_prior = arrays->unvisited_prior + nodes * num_actions;
    tree.raw_value = arrays->raw_value + nodes;
    tree.min_max = arrays->min_max + 2LL * b;
    tree.scratch = arrays->scratch + (long long)b * num_actions;
    tree.num_actions = num_actions;
    return tree;
}

__device__ double positive_infinity() { return __longlong_as_double(0x7ff0000000000000LL); }

__device__ double tiny() { return __longlong_as_double(0x0010000000000000LL); }  // the smallest normal double

// prior[a] = softmax of logits over the legal actions (all actions unless is_root), -1 for illegal ones.
// [A] -> [A]; prior may be logits itself (legal is read only at the root).
template <typename Real>
__device__ void _softmax(const Real* logits, const bool* legal, bool is_root, double* prior, int num_actions) {
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
            prior[a] = -1.0;
        }
    }
    const double inverse_total = 1.0 / total;
    for (int a = 0; a < num_actions; ++a) {
        if (!is_root || legal[a]) {
            prior[a] = prior[a] * inverse_total;
        }
    }
}

// Set best_unvisited of node and its prior from the node's unvisited_prior [A]: the unvisited (legal)
// child of largest prior, lowest index on ties, or -1.
__device__ void _find_best_unvisited(Node& node, const double* unvisited_prior, int num_actions) {
    int best_action = -1;
    double best_prior = -1.0;  // the prior of visited and illegal children
    for (int a = 0; a < num_actions; ++a) {
        if (unvisited_prior[a] > best_prior) {
            best_prior = unvisited_prior[a];
            best_action = a;
        }
    }
    node.best_unvisited = best_action;
    node.best_unvisited_prior = best_prior;
}

// Write node, unvisited, and link it to the next free slot of its parent (-1: the root). The caller
// writes the node's unvisited_prior row first: the root's priors, or a new node's logits.
__device__ void _create_node(const TreeRows& tree, int node, int parent, int action, double reward) {
    Node& record = tree.nodes[node];
    record.parent = parent;
    record.reward = reward;
    record.visits = 0;
    record.value_sum = 0.0;
    record.num_visited = 0;
    if (parent < 0) {
        record.slot_in_parent = -1;
        record.prior = 0.0;
        _find_best_unvisited(record, tree.unvisited_prior + tree.row(node), tree.num_actions);
        return;
    }
    record.best_unvisited = PRIORS_PENDING;
    record.best_unvisited_prior = -1.0;
    Node& parent_record = tree.nodes[parent];
    const int slot = parent_record.num_visited;
    record.slot_in_parent = slot;
    record.prior = tree.unvisited_prior[tree.row(parent) + action];
    tree.visited[tree.row(parent) + slot].action = action;
    tree.visited[tree.row(parent) + slot].child = node;
    tree.visited[tree.row(parent) + slot].prior_term = record.prior;  // P / (1 + N) with N = 0; Gumbel keeps P
    tree.visited[tree.row(parent) + slot].visits = 0;
    parent_record.num_visited = slot + 1;
    tree.unvisited_prior[tree.row(parent) + action] = -1.0;
    _find_best_unvisited(parent_record, tree.unvisited_prior + tree.row(parent), tree.num_actions);
}

// Walk the tree from the root by PUCT to the first unexpanded child; write its parent and action. At
// each node the action of largest score wins, lowest index on ties; only the candidates are scored:
// the visited children and the best unvisited one (see backends/cpu.py). A node's pending priors are
// computed on the way.
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
    while (true) {
        Node& record = tree.nodes[node];
        double* unvisited_prior = tree.unvisited_prior + tree.row(node);
        if (record.best_unvisited == PRIORS_PENDING) {
            _softmax(unvisited_prior, (const bool*)nullptr, false, unvisited_prior, tree.num_actions);
            _find_best_unvisited(record, unvisited_prior, tree.num_actions);
        }
        const double exploration = exploration_table[record.visits];
        int best_action = record.best_unvisited;
        int best_child = -1;
        double best_score = -positive_infinity();
        if (best_action >= 0) {
            best_score = exploration * record.best_unvisited_prior + 0.0;
        }
        for (int k = 0; k < record.num_visited; ++k) {
            const VisitedChild& child = tree.visited[tree.row(node) + k];
            const double value_score = (child.q - q_min) * q_scale;
            const double score = exploration * child.prior_term + value_score;
            if (score > best_score || (score == best_score && child.action < best_action)) {
                best_score = score;
                best_action = child.action;
                best_child = child.child;
            }
        }
        if (best_child < 0) {  // the best child is unvisited: the leaf to expand
            *leaf_parent = node;
            *leaf_action = best_action;
            return;
        }
        node = best_child;
    }
}

// Write the root (node 0) from its priors (in unvisited_prior's row 0): one visit carrying the network's
// value, an empty Q range.
__device__ void _create_root(const TreeRows& tree, double value) {
    _create_node(tree, 0, -1, -1, 0.0);
    tree.nodes[0].visits = 1;
    tree.nodes[0].value_sum = value;
    tree.min_max[0] = positive_infinity();
    tree.min_max[1] = -positive_infinity();
}

// Add the discounted return to every node from leaf up to the root; widen the tree's Q range. Each parent's slot
// of the node gets the node's Q and visits, and, if puct_prior_terms, PUCT's prior term P / (1 + N) (Gumbel searches
// keep P there).
__device__ void _backup(const TreeRows& tree, int leaf, double value, double discount, bool puct_prior_terms) {
    double q_min = tree.min_max[0];
    double q_max = tree.min_max[1];
    double backed_up = value;
    int node = leaf;
    while (true) {
        Node& record = tree.nodes[node];
        record.value_sum += backed_up;
        record.visits += 1;
        if (node == 0) {
            break;
        }
        const double reward = record.reward;
        const int visits = record.visits;
        const double q = reward + discount * (record.value_sum / (double)visits);
        q_min = q < q_min ? q : q_min;  // Python's min and max, as in Numba
        q_max = q > q_max ? q : q_max;
        VisitedChild& slot = tree.visited[tree.row(record.parent) + record.slot_in_parent];
        slot.q = q;
        slot.visits = visits;
        if (puct_prior_terms) {
            slot.prior_term = record.prior / (double)(1 + visits);
        }
        backed_up = reward + discount * backed_up;
        node = record.parent;
    }
    tree.min_max[0] = q_min;
    tree.min_max[1] = q_max;
}

// One simulation step for tree b: create new_node under the selected leaf from the model's output (its
// logits wait in unvisited_prior until its priors are needed), back its value up and, if select_next,
// select the leaf of the next simulation.
template <typename Real>
__device__ void expand_backup_select_tree(const TreeArrays* arrays, int b, int num_nodes, int num_actions, int new_node,
                                          const Real* new_reward, const Real* new_value, const Real* new_logits,
                                          double discount, const double* exploration_table, int select_next) {
    const TreeRows tree = tree_rows(arrays, b, num_nodes, num_actions);
    const Real* logits = new_logits + (long long)b * num_actions;
    for (int a = 0; a < num_actions; ++a) {
        tree.unvisited_prior[tree.row(new_node) + a] = (double)logits[a];
    }
    _create_node(tree, new_node, arrays->leaf_parent[b], (int)arrays->leaf_action[b], (double)new_reward[b]);
    _backup(tree, new_node, (double)new_value[b], discount, true);
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

// --- Gumbel MuZero (the semantics are in sb3_muzero/mcts/driver.py) ----------------------------------------

// What sigma(completed Q) of one node's actions needs: sigma(q) = scale * ((q - low) / span); the mixed
// value completes the Q of every unvisited (or, at the root, illegal) action. node_value: the node's raw value.
struct CompletedQ {
    double mixed_value;
    double low;
    double high;
    double scale;
    double span;
    int total_visits;

    __device__ double sigma(double q) const { return scale * ((q - low) / span); }
};

__device__ CompletedQ _completed_q_range(const TreeRows& tree, int node, double node_value, double c_visit,
                                         double c_scale, double min_q_range) {
    const Node& record = tree.nodes[node];
    int total_visits = 0;
    int most_visits = 0;
    double weighted_q = 0.0;
    double mass = 0.0;
    double low = positive_infinity();
    double high = -positive_infinity();
    for (int k = 0; k < record.num_visited; ++k) {
        const VisitedChild& slot = tree.visited[tree.row(node) + k];
        total_visits += slot.visits;
        most_visits = slot.visits > most_visits ? slot.visits : most_visits;
        const double prior = slot.prior_term > tiny() ? slot.prior_term : tiny();  // Gumbel keeps P in prior_term
        weighted_q += prior * slot.q;
        mass += prior;
        low = slot.q < low ? slot.q : low;
        high = slot.q > high ? slot.q : high;
    }
    CompletedQ completed;
    completed.mixed_value = node_value;
    if (record.num_visited > 0) {
        completed.mixed_value = (node_value + (double)total_visits * (weighted_q / mass)) / (double)(total_visits + 1);
    }
    if (record.num_visited < tree.num_actions) {  // some actions are unvisited (or illegal): they take the mixed value
        low = completed.mixed_value < low ? completed.mixed_value : low;
        high = completed.mixed_value > high ? completed.mixed_value : high;
    }
    completed.low = low;
    completed.high = high;
    completed.scale = (c_visit + (double)most_visits) * c_scale;
    completed.span = high - low > min_q_range ? high - low : min_q_range;
    completed.total_visits = total_visits;
    return completed;
}

// The root action Sequential Halving takes among the legal actions with considered_visit visits: the
// largest max(LOW_SCORE, (gumbel + logit) + sigma), lowest index on ties. Writes its child node (-1 if
// unvisited). gumbel_logits [A]: the tree's row of gumbel + root logits.
__device__ int _gumbel_root_choice(const TreeRows& tree, const double* gumbel_logits, int considered_visit,
                                   double c_visit, double c_scale, double min_q_range, int* best_child) {
    const CompletedQ completed = _completed_q_range(tree, 0, tree.raw_value[0], c_visit, c_scale, min_q_range);
    int best_action = -1;
    double best_score = -positive_infinity();
    *best_child = -1;
    if (considered_visit == 0) {  // the unvisited legal actions, which share sigma
        const double unvisited_sigma = completed.sigma(completed.mixed_value);
        for (int a = 0; a < tree.num_actions; ++a) {
            if (tree.unvisited_prior[a] >= 0.0) {
                const double sum = gumbel_logits[a] + unvisited_sigma;
                const double score = sum > LOW_SCORE ? sum : LOW_SCORE;
                if (score > best_score) {
                    best_score = score;
                    best_action = a;
                }
            }
        }
        return best_action;
    }
    for (int k = 0; k < tree.nodes[0].num_visited; ++k) {
        const VisitedChild& slot = tree.visited[k];
        if (slot.visits != considered_visit) {
            continue;
        }
        const double sum = gumbel_logits[slot.action] + completed.sigma(slot.q);
        const double score = sum > LOW_SCORE ? sum : LOW_SCORE;
        if (score > best_score || (score == best_score && slot.action < best_action)) {
            best_score = score;
            best_action = slot.action;
            *best_child = slot.child;
        }
    }
    return best_action;
}

// Walk the tree from the root to the first unexpanded child; write its parent and action. At the root,
// Sequential Halving; below it the deterministic selection: the largest pi(a) - N(a) / (1 + sum N), pi =
// softmax(logits + sigma), lowest index on ties, scoring only the visited children and the best unvisited
// one (see backends/cpu.py). The visited children's P exp(sigma - top) wait in the tree's scratch row.
__device__ void _gumbel_select_leaf(const TreeRows& tree, const double* gumbel_logits, double* scratch,
                                    int considered_visit, double c_visit, double c_scale, double min_q_range,
                                    int* leaf_parent, long long* leaf_action) {
    int child;
    int action = _gumbel_root_choice(tree, gumbel_logits, considered_visit, c_visit, c_scale, min_q_range, &child);
    int node = 0;
    while (child >= 0) {
        node = child;
        Node& record = tree.nodes[node];
        double* unvisited_prior = tree.unvisited_prior + tree.row(node);
        if (record.best_unvisited == PRIORS_PENDING) {
            _softmax(unvisited_prior, (const bool*)nullptr, false, unvisited_prior, tree.num_actions);
            _find_best_unvisited(record, unvisited_prior, tree.num_actions);
        }
        if (record.num_visited == 0) {  // sigma is 0 for every action: pi is the prior
            action = record.best_unvisited;
            break;
        }
        const CompletedQ completed =
            _completed_q_range(tree, node, tree.raw_value[node], c_visit, c_scale, min_q_range);
        const double top = completed.sigma(completed.high);  // the largest sigma
        double normaliser = 0.0;
        for (int k = 0; k < record.num_visited; ++k) {
            const VisitedChild& slot = tree.visited[tree.row(node) + k];
            scratch[k] = slot.prior_term * exp(completed.sigma(slot.q) - top);
            normaliser += scratch[k];
        }
        action = record.best_unvisited;
        child = -1;
        double best_score = -positive_infinity();
        if (action >= 0) {
            double unvisited_mass = 0.0;  // the unvisited children's priors in action order (the others hold -1: they add 0)
            for (int a = 0; a < tree.num_actions; ++a) {
                unvisited_mass += unvisited_prior[a] > 0.0 ? unvisited_prior[a] : 0.0;
            }
            const double unvisited_weight = exp(completed.sigma(completed.mixed_value) - top);
            normaliser += unvisited_mass * unvisited_weight;
            best_score = record.best_unvisited_prior * unvisited_weight / normaliser - 0.0;
        }
        const double denominator = (double)(1 + completed.total_visits);
        for (int k = 0; k < record.num_visited; ++k) {
            const VisitedChild& slot = tree.visited[tree.row(node) + k];
            const double score = scratch[k] / normaliser - (double)slot.visits / denominator;
            if (score > best_score || (score == best_score && slot.action < action)) {
                best_score = score;
                action = slot.action;
                child = slot.child;
            }
        }
    }
    *leaf_parent = node;
    *leaf_action = action;
}

// policy [A] = softmax over the legal actions (finite root_logits) of logits + sigma(completed Q), 0 for
// illegal actions, from the tree's root.
__device__ void _gumbel_policy(const TreeRows& tree, const double* root_logits, double c_visit, double c_scale,
                               double min_q_range, double* policy) {
    const CompletedQ completed = _completed_q_range(tree, 0, tree.raw_value[0], c_visit, c_scale, min_q_range);
    const double unvisited_sigma = completed.sigma(completed.mixed_value);
    for (int a = 0; a < tree.num_actions; ++a) {
        policy[a] = root_logits[a] + unvisited_sigma;
    }
    for (int k = 0; k < tree.nodes[0].num_visited; ++k) {
        const VisitedChild& slot = tree.visited[k];
        policy[slot.action] = root_logits[slot.action] + completed.sigma(slot.q);
    }
    double largest = -positive_infinity();
    for (int a = 0; a < tree.num_actions; ++a) {
        if (root_logits[a] > -positive_infinity() && policy[a] > largest) {
            largest = policy[a];
        }
    }
    double total = 0.0;
    for (int a = 0; a < tree.num_actions; ++a) {
        if (root_logits[a] > -positive_infinity()) {
            policy[a] = exp(policy[a] - largest);
            total += policy[a];
        } else {
            policy[a] = 0.0;
        }
    }
    for (int a = 0; a < tree.num_actions; ++a) {
        policy[a] = policy[a] / total;
    }
}

// One Gumbel simulation step for tree b: create new_node under the selected leaf from the model's output,
// back its value up and, if select_next, select the next leaf with the considered visit count of the next
// simulation (table row num_considered[b], column new_node).
template <typename Real>
__device__ void gumbel_expand_backup_select_tree(const TreeArrays* arrays, int b, int num_nodes, int num_actions,
                                                 int new_node, const Real* new_reward, const Real* new_value,
                                                 const Real* new_logits, double discount, const int* considered_visits,
                                                 int num_simulations, const int* num_considered,
                                                 const double* gumbel_logits, double c_visit, double c_scale,
                                                 double min_q_range, int select_next) {
    const TreeRows tree = tree_rows(arrays, b, num_nodes, num_actions);
    const Real* logits = new_logits + (long long)b * num_actions;
    for (int a = 0; a < num_actions; ++a) {
        tree.unvisited_prior[tree.row(new_node) + a] = (double)logits[a];
    }
    _create_node(tree, new_node, arrays->leaf_parent[b], (int)arrays->leaf_action[b], (double)new_reward[b]);
    tree.raw_value[new_node] = (double)new_value[b];
    _backup(tree, new_node, (double)new_value[b], discount, false);
    if (select_next) {
        const int considered_visit = considered_visits[(long long)num_considered[b] * num_simulations + new_node];
        _gumbel_select_leaf(tree, gumbel_logits + (long long)b * num_actions, tree.scratch, considered_visit, c_visit,
                            c_scale, min_q_range, arrays->leaf_parent + b, arrays->leaf_action + b);
    }
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
    mcts::_softmax(prior_logits + row, legal + row, true, tree.unvisited_prior, num_actions);
    if (noise_fraction > 0.0) {
        for (int a = 0; a < num_actions; ++a) {
            if (legal[row + a]) {
                const double mixed = tree.unvisited_prior[a] * (1.0 - noise_fraction) + noise[row + a] * noise_fraction;
                tree.unvisited_prior[a] = mixed;
            }
        }
    }
    mcts::_create_root(tree, root_value[b]);
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
    const Node& root = tree.nodes[0];
    out_value[b] = root.value_sum / (double)root.visits;
    for (int a = 0; a < num_actions; ++a) {
        out_visits[row + a] = 0;
        out_q[row + a] = 0.0;
    }
    for (int k = 0; k < root.num_visited; ++k) {
        const VisitedChild& child = tree.visited[k];
        out_visits[row + child.action] = tree.nodes[child.child].visits;
        out_q[row + child.action] = child.q;
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

// Gumbel: write the root of every tree (priors over the legal actions, one visit carrying the network
// value), then select the leaves of the first simulation. prior_logits [B, A], root_value [B], legal [B, A],
// considered_visits [M + 1, num_simulations] (Sequential Halving's table), num_considered [B] (each tree's
// row), gumbel_logits [B, A] (Gumbel noise plus the shifted root logits, -inf for illegal actions).
extern "C" __global__ void gumbel_init_roots_and_select(const TreeArrays* arrays, int batch_size, int num_nodes,
                                                        int num_actions, const double* prior_logits,
                                                        const double* root_value, const bool* legal,
                                                        const int* considered_visits, int num_simulations,
                                                        const int* num_considered, const double* gumbel_logits,
                                                        double c_visit, double c_scale, double min_q_range) {
    const int b = blockIdx.x * blockDim.x + threadIdx.x;
    if (b >= batch_size) {
        return;
    }
    const mcts::TreeRows tree = mcts::tree_rows(arrays, b, num_nodes, num_actions);
    const long long row = (long long)b * num_actions;
    mcts::_softmax(prior_logits + row, legal + row, true, tree.unvisited_prior, num_actions);
    mcts::_create_root(tree, root_value[b]);
    tree.raw_value[0] = root_value[b];
    const int considered_visit = considered_visits[(long long)num_considered[b] * num_simulations];
    mcts::_gumbel_select_leaf(tree, gumbel_logits + row, tree.scratch, considered_visit, c_visit, c_scale, min_q_range,
                              arrays->leaf_parent + b, arrays->leaf_action + b);
}

// One Gumbel simulation step for every tree (see gumbel_expand_backup_select_tree), with the model's
// outputs in float32 or float64; the other arguments as for gumbel_init_roots_and_select.
extern "C" __global__ void gumbel_expand_backup_select_f32(
    const TreeArrays* arrays, int batch_size, int num_nodes, int num_actions, int new_node, const float* new_reward,
    const float* new_value, const float* new_logits, double discount, const int* considered_visits, int num_simulations,
    const int* num_considered, const double* gumbel_logits, double c_visit, double c_scale, double min_q_range,
    int select_next) {
    const int b = blockIdx.x * blockDim.x + threadIdx.x;
    if (b < batch_size) {
        mcts::gumbel_expand_backup_select_tree(arrays, b, num_nodes, num_actions, new_node, new_reward, new_value,
                                               new_logits, discount, considered_visits, num_simulations,
                                               num_considered, gumbel_logits, c_visit, c_scale, min_q_range,
                                               select_next);
    }
}

extern "C" __global__ void gumbel_expand_backup_select_f64(
    const TreeArrays* arrays, int batch_size, int num_nodes, int num_actions, int new_node, const double* new_reward,
    const double* new_value, const double* new_logits, double discount, const int* considered_visits,
    int num_simulations, const int* num_considered, const double* gumbel_logits, double c_visit, double c_scale,
    double min_q_range, int select_next) {
    const int b = blockIdx.x * blockDim.x + threadIdx.x;
    if (b < batch_size) {
        mcts::gumbel_expand_backup_select_tree(arrays, b, num_nodes, num_actions, new_node, new_reward, new_value,
                                               new_logits, discount, considered_visits, num_simulations,
                                               num_considered, gumbel_logits, c_visit, c_scale, min_q_range,
                                               select_next);
    }
}

// Gumbel's result for every tree: the acting action (the best of the most visited root actions by
// Sequential Halving's score) into action [B], and the policy target into policy [B, A] (float64).
// gumbel_logits and root_logits [B, A] as for gumbel_init_roots_and_select.
extern "C" __global__ void gumbel_choose(const TreeArrays* arrays, int batch_size, int num_nodes, int num_actions,
                                         const double* gumbel_logits, const double* root_logits, double c_visit,
                                         double c_scale, double min_q_range, long long* action, double* policy) {
    const int b = blockIdx.x * blockDim.x + threadIdx.x;
    if (b >= batch_size) {
        return;
    }
    const mcts::TreeRows tree = mcts::tree_rows(arrays, b, num_nodes, num_actions);
    const long long row = (long long)b * num_actions;
    int most_visits = 0;
    for (int k = 0; k < tree.nodes[0].num_visited; ++k) {
        const int visits = tree.visited[k].visits;
        most_visits = visits > most_visits ? visits : most_visits;
    }
    int child;
    action[b] =
        mcts::_gumbel_root_choice(tree, gumbel_logits + row, most_visits, c_visit, c_scale, min_q_range, &child);
    mcts::_gumbel_policy(tree, root_logits + row, c_visit, c_scale, min_q_range, policy + row);
}
