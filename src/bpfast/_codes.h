/* The numbers by which the kernels know an activation, a cost and an update rule: defined here
 * and nowhere else. bpfast._kernels exports them to Python by name (ACTIVATION_CODES, …), and
 * bpfast.activations, bpfast.costs and bpfast.training check at import that their names are
 * these, in this order. */
#ifndef BPFAST_CODES_H
#define BPFAST_CODES_H

enum {
    BPFAST_SIGMOID = 0, BPFAST_TANH = 1, BPFAST_RELU = 2, BPFAST_IDENTITY = 3,
    BPFAST_SOFTMAX = 4,         /* the output layer only: a_j = e^(z_j) / Σ_i e^(z_i) */
    BPFAST_N_ACTIVATIONS = 5
};
enum { BPFAST_QUADRATIC = 0, BPFAST_CROSS_ENTROPY = 1, BPFAST_N_COSTS = 2 };
enum { BPFAST_SGD = 0, BPFAST_MOMENTUM = 1, BPFAST_NESTEROV = 2, BPFAST_ADAM = 3,
       BPFAST_N_RULES = 4 };

static const char* const bpfast_activation_names[BPFAST_N_ACTIVATIONS] = {
    "sigmoid", "tanh", "relu", "identity", "softmax"};
static const char* const bpfast_cost_names[BPFAST_N_COSTS] = {"quadratic", "cross_entropy"};
static const char* const bpfast_rule_names[BPFAST_N_RULES] = {
    "sgd", "momentum", "nesterov", "adam"};

#endif
