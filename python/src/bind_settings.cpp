// PackingConfig, ShardingSpec, CostModel, TunedConfig and the measures (python/src/bindings.hpp).
#include "base/error.hpp"
#include "base/token_count.hpp"
#include "python/src/arrays.hpp"
#include "python/src/bindings.hpp"
#include "python/src/objects.hpp"
#include "runtime/model/model_spec.hpp"
#include "runtime/parallel/layout.hpp"
#include "tuner/cost/cost_model.hpp"
#include "tuner/packing/pack_run.hpp"
#include "tuner/packing/packer.hpp"
#include "tuner/packing/packing_knobs.hpp"
#include "tuner/packing/packing_measures.hpp"
#include "tuner/search/evaluate.hpp"
#include "tuner/sharding/shard_metrics.hpp"
#include "tuner/sharding/sharding.hpp"
#include "tuner/spec/tuned_config.hpp"

#include <fmt/format.h>
#include <pybind11/stl.h>
#include <variant>

namespace wlb::python {
namespace {

using tuner::cost_model;
using tuner::packing_config;
using tuner::sharding_spec;

using token_count = std::variant<std::int64_t, std::string>;

std::int64_t tokens_of(const token_count& t, const char* what) {
    if (const auto* n = std::get_if<std::int64_t>(&t))
        return *n;
    return wlb::parse_token_count(std::get<std::string>(t), what);
}

std::shared_ptr<cost_model> make_cost_model(const std::string& model, const std::string& hardware,
                                            const std::string& layout, const std::string& order) {
    // As the CLI's --model, --hardware, --layout and --order (cli/common_options.cpp).
    auto l = runtime::layout::parse(layout, order);
    auto m = runtime::load_model(model);
    return std::make_shared<cost_model>(std::move(m), tuner::load_hardware(hardware), std::move(l));
}

sharding_spec make_sharding_spec(const std::string& policy,
                                 const std::optional<token_count>& hybrid_threshold,
                                 double hybrid_max_token_imbalance) {
    // As the CLI's --sharding and --hybrid-threshold, with the messages it gives.
    sharding_spec s;
    s.policy = tuner::parse_sharding_policy(policy, "--sharding");
    if (hybrid_threshold) {
        if (s.policy != tuner::sharding_policy::hybrid)
            throw input_error("--hybrid-threshold applies to --sharding hybrid only");
        const auto* text = std::get_if<std::string>(&*hybrid_threshold);
        s.hybrid_threshold_tokens = tuner::parse_hybrid_threshold(
            text ? *text : std::to_string(std::get<std::int64_t>(*hybrid_threshold)),
            "--hybrid-threshold");
    }
    nlohmann::json j = tuner::to_json(s);
    j["hybrid_max_token_imbalance"] = hybrid_max_token_imbalance;
    return tuner::sharding_spec_from_json(j, "ShardingSpec"); // checks the imbalance bound
}

py::array_t<double> per_rank(const tuner::shard_metrics& m, double tuner::rank_load::*field) {
    std::vector<double> out;
    for (const auto& r : m.ranks)
        out.push_back(r.*field);
    return owned(std::move(out), {static_cast<py::ssize_t>(m.ranks.size())});
}

py::array_t<std::int64_t> per_rank(const tuner::shard_metrics& m,
                                   std::int64_t tuner::rank_load::*field) {
    std::vector<std::int64_t> out;
    for (const auto& r : m.ranks)
        out.push_back(r.*field);
    return owned(std::move(out), {static_cast<py::ssize_t>(m.ranks.size())});
}

void bind_packing_config(py::module_& m) {
    py::class_<packing_config>(m, "PackingConfig", R"doc(
A packing policy and its parameters (docs/formats.md, "packing"): what `wlbtune pack --policy`
takes and a tuned config's "packing" object holds. Immutable; validated on construction
(ValueError with the library's message).

  policy          plain | fixed-greedy | varlen | wlb | ffd | plain-whole
  context_tokens  the fixed sequence length C
  replicas        DP replicas per step (the layout's dp)
  micro_batches   micro-batches per replica per step
  smax_tokens     varlen, wlb: most tokens per micro-batch (S_max); 0 = the context
  thresholds      wlb: outlier queue lower bounds L1 < ... < Ln, in tokens
  window          fixed-greedy: global batches per packing window
  step_tokens     varlen, wlb: the step's token budget; 0 = replicas x micro_batches x C
  max_delay_steps wlb: a document that waited this many steps is placed first (0: no bound)
)doc")
        .def(py::init([](const std::string& policy, std::int64_t context_tokens, int replicas,
                         int micro_batches, std::int64_t smax_tokens,
                         std::vector<std::int64_t> thresholds, int window, std::int64_t step_tokens,
                         std::int64_t max_delay_steps) {
                 packing_config c;
                 c.policy = tuner::parse_packing_policy(policy);
                 c.context_tokens = context_tokens;
                 c.replicas = replicas;
                 c.micro_batches = micro_batches;
                 c.smax_tokens = smax_tokens;
                 c.thresholds = std::move(thresholds);
                 c.window = window;
                 c.budget_tokens = step_tokens;
                 c.max_delay_steps = max_delay_steps;
                 tuner::validate(c);
                 return c;
             }),
             py::kw_only(), py::arg("policy") = "wlb", py::arg("context_tokens") = 131072,
             py::arg("replicas") = 1, py::arg("micro_batches") = 4, py::arg("smax_tokens") = 0,
             py::arg("thresholds") = std::vector<std::int64_t>{}, py::arg("window") = 1,
             py::arg("step_tokens") = 0, py::arg("max_delay_steps") = 0)
        .def_static(
            "for_layout",
            [](const std::string& layout, const std::string& policy, const token_count& context,
               int queues, const std::string& thresholds, const std::string& smax, int window,
               int micro_batches, const std::string& order, std::int64_t max_delay) {
                // The CLI's packing options (wlbtune pack --policy ... --queues ...).
                const auto l = runtime::layout::parse(layout, order);
                return tuner::make_packing_config(
                    {.policy = policy,
                     .context_tokens = tokens_of(context, "--context"),
                     .queues = queues,
                     .thresholds = thresholds,
                     .smax = smax,
                     .window = window,
                     .micro_batches = micro_batches,
                     .max_delay = max_delay},
                    l);
            },
            py::arg("layout"), py::kw_only(), py::arg("policy") = "wlb",
            py::arg("context") = token_count(std::string("128k")), py::arg("queues") = 2,
            py::arg("thresholds") = "", py::arg("smax") = "1.5x", py::arg("window") = 1,
            py::arg("micro_batches") = 0,
            py::arg("order") = std::string(runtime::layout::default_order),
            py::arg("max_delay") = 0, R"doc(
The configuration `wlbtune pack` builds from its options for a layout ("tp=8,cp=2,pp=4,dp=1"):
replicas = dp, micro_batches = pp unless given, wlb thresholds "24k,64k" or the defaults for
`queues` queues, smax "1.5x" or a token count, max_delay as --max-delay (wlb). Errors name the
CLI option (--smax, ...).
)doc")
        .def_static(
            "from_dict",
            [](const py::dict& d) {
                return tuner::packing_config_from_json(to_json_value(d, "PackingConfig"),
                                                       "PackingConfig");
            },
            py::arg("d"), "The inverse of to_dict(); a tuned config's \"packing\" object.")
        .def(
            "to_dict", [](const packing_config& c) { return to_python(tuner::to_json(c)); },
            "As a tuned config's \"packing\" object (docs/formats.md).")
        .def_property_readonly("policy",
                               [](const packing_config& c) { return tuner::to_string(c.policy); })
        .def_readonly("context_tokens", &packing_config::context_tokens)
        .def_readonly("replicas", &packing_config::replicas)
        .def_readonly("micro_batches", &packing_config::micro_batches)
        .def_readonly("smax_tokens", &packing_config::smax_tokens)
        .def_property_readonly(
            "thresholds", [](const packing_config& c) { return py::tuple(py::cast(c.thresholds)); })
        .def_readonly("window", &packing_config::window)
        .def_readonly("max_delay_steps", &packing_config::max_delay_steps,
                      "wlb: the longest wait in steps (0: no bound).")
        .def_property_readonly("step_tokens", &packing_config::step_tokens,
                               "The step's token budget (all replicas).")
        .def_property_readonly("micro_batch_limit", &packing_config::micro_batch_limit,
                               "Most tokens one micro-batch may hold under this policy.")
        .def_property_readonly("step_micro_batches", &packing_config::step_micro_batches,
                               "Micro-batches per step, all replicas.")
        .def("__eq__",
             [](const packing_config& a, const packing_config& b) {
                 return tuner::to_json(a) == tuner::to_json(b);
             })
        .def("__repr__",
             [](const packing_config& c) {
                 return fmt::format("<PackingConfig {}: {} x {} micro-batches of context {}>",
                                    tuner::describe(c), c.replicas, c.micro_batches,
                                    c.context_tokens);
             })
        .def(py::pickle([](const packing_config& c) { return to_python(tuner::to_json(c)); },
                        [](const py::object& d) {
                            return tuner::packing_config_from_json(
                                to_json_value(d, "PackingConfig"), "PackingConfig");
                        }));
}

void bind_sharding_spec(py::module_& m) {
    py::class_<sharding_spec>(m, "ShardingSpec", R"doc(
A CP sharding policy and its parameters (docs/sharding.md): what `wlbtune pack --sharding` and
`--hybrid-threshold` take and a tuned config's "sharding" object holds. Immutable.

  policy                      per-seq | per-doc | adaptive | hybrid
  hybrid_threshold            hybrid only: documents of at least this many tokens are sharded
                              per document (an int or "16k"); None or "auto": chosen per
                              micro-batch
  hybrid_max_token_imbalance  hybrid only: the token balance its own layout may reach (>= 1)
)doc")
        .def(py::init(&make_sharding_spec), py::arg("policy") = "adaptive", py::kw_only(),
             py::arg("hybrid_threshold") = py::none(), py::arg("hybrid_max_token_imbalance") = 1.05)
        .def_static(
            "from_dict",
            [](const py::dict& d) {
                return tuner::sharding_spec_from_json(to_json_value(d, "ShardingSpec"),
                                                      "ShardingSpec");
            },
            py::arg("d"), "The inverse of to_dict(); a tuned config's \"sharding\" object.")
        .def(
            "to_dict", [](const sharding_spec& s) { return to_python(tuner::to_json(s)); },
            "As a tuned config's \"sharding\" object (docs/formats.md).")
        .def_property_readonly("policy",
                               [](const sharding_spec& s) { return tuner::to_string(s.policy); })
        .def_readonly("hybrid_threshold_tokens", &sharding_spec::hybrid_threshold_tokens,
                      "hybrid: the length threshold in tokens; None = auto.")
        .def_readonly("hybrid_max_token_imbalance", &sharding_spec::hybrid_max_token_imbalance)
        .def("__eq__",
             [](const sharding_spec& a, const sharding_spec& b) {
                 return tuner::to_json(a) == tuner::to_json(b);
             })
        .def("__repr__",
             [](const sharding_spec& s) {
                 return fmt::format("<ShardingSpec {}>", tuner::describe_sharding(s));
             })
        .def(py::pickle([](const sharding_spec& s) { return to_python(tuner::to_json(s)); },
                        [](const py::object& d) {
                            return tuner::sharding_spec_from_json(to_json_value(d, "ShardingSpec"),
                                                                  "ShardingSpec");
                        }));
}

void bind_cost_model(py::module_& m) {
    py::class_<tuner::step_measures>(m, "StepMeasures", R"doc(
The balance of one packed step, predicted by the cost model (tuner/packing/packing_measures.hpp):
imbalance = max over the step's micro-batches of predicted forward seconds / their mean (the
WLB-LLM paper's imbalance degree with micro-batches = PP); attention_imbalance the same for
attention work alone. Seconds are per layer, forward.
)doc")
        .def_readonly("step", &tuner::step_measures::step)
        .def_readonly("documents", &tuner::step_measures::documents)
        .def_readonly("tokens", &tuner::step_measures::tokens)
        .def_readonly("imbalance", &tuner::step_measures::imbalance)
        .def_readonly("attention_imbalance", &tuner::step_measures::attention_imbalance)
        .def_readonly("max_fwd_seconds", &tuner::step_measures::max_fwd_seconds)
        .def_readonly("mean_fwd_seconds", &tuner::step_measures::mean_fwd_seconds)
        .def_readonly("min_micro_batch_tokens", &tuner::step_measures::min_micro_batch_tokens)
        .def_readonly("max_micro_batch_tokens", &tuner::step_measures::max_micro_batch_tokens)
        .def("__repr__", [](const tuner::step_measures& s) {
            return fmt::format("<StepMeasures step {}: {} documents, {} tokens, imbalance {:.4f}, "
                               "attention imbalance {:.4f}>",
                               s.step, s.documents, s.tokens, s.imbalance, s.attention_imbalance);
        });

    py::class_<tuner::shard_metrics>(m, "ShardMeasures", R"doc(
What a micro-batch's CP sharding costs, predicted by the cost model per transformer layer,
forward + backward (tuner/sharding/shard_metrics.hpp): predicted_seconds is the slowest rank's
attention + linear seconds (the objective the sharders compare); attention_imbalance and
token_imbalance are max over ranks / mean. The rank_* arrays are indexed by CP rank.
)doc")
        .def_readonly("predicted_seconds", &tuner::shard_metrics::predicted_seconds)
        .def_readonly("attention_imbalance", &tuner::shard_metrics::attention_imbalance)
        .def_readonly("token_imbalance", &tuner::shard_metrics::token_imbalance)
        .def_property_readonly(
            "rank_tokens",
            [](const tuner::shard_metrics& s) { return per_rank(s, &tuner::rank_load::tokens); })
        .def_property_readonly("rank_causal_pairs",
                               [](const tuner::shard_metrics& s) {
                                   return per_rank(s, &tuner::rank_load::causal_pairs);
                               })
        .def_property_readonly("rank_attention_seconds",
                               [](const tuner::shard_metrics& s) {
                                   return per_rank(s, &tuner::rank_load::attention_seconds);
                               })
        .def_property_readonly("rank_linear_seconds",
                               [](const tuner::shard_metrics& s) {
                                   return per_rank(s, &tuner::rank_load::linear_seconds);
                               })
        .def("__repr__", [](const tuner::shard_metrics& s) {
            return fmt::format("<ShardMeasures {} ranks: predicted {:.3e} s per layer, attention "
                               "imbalance {:.4f}, token imbalance {:.4f}>",
                               s.ranks.size(), s.predicted_seconds, s.attention_imbalance,
                               s.token_imbalance);
        });

    py::class_<cost_model, std::shared_ptr<cost_model>>(m, "CostModel", R"doc(
The cost model of a model, a hardware and a 4D layout (tuner/cost/cost_model.hpp): predicted
seconds of the work a packer balances and a sharder splits. model and hardware are preset names
(see model_presets(), hardware_presets()) or paths to JSON files, as `wlbtune --model` and
`--hardware` take them.
)doc")
        .def(py::init(&make_cost_model), py::kw_only(), py::arg("model") = "7b",
             py::arg("hardware") = "h100-sxm", py::arg("layout") = "tp=8,cp=2,pp=4,dp=1",
             py::arg("order") = std::string(runtime::layout::default_order))
        .def_static(
            "from_dict",
            [](const py::dict& d) {
                return std::make_shared<cost_model>(
                    cost_model::from_json(to_json_value(d, "CostModel"), "CostModel"));
            },
            py::arg("d"))
        .def(
            "to_dict", [](const cost_model& c) { return to_python(c.to_json()); },
            "The whole model (model, hardware, layout, options) as plain values.")
        .def_property_readonly("model", [](const cost_model& c) { return c.model().name; })
        .def_property_readonly("hardware", [](const cost_model& c) { return c.hardware().name; })
        .def_property_readonly("layout", [](const cost_model& c) { return c.layout().spec(); })
        .def_property_readonly("order",
                               [](const cost_model& c) { return c.layout().order_string(); })
        .def_property_readonly("tp", [](const cost_model& c) { return c.layout().tp(); })
        .def_property_readonly("cp", [](const cost_model& c) { return c.layout().cp(); })
        .def_property_readonly("pp", [](const cost_model& c) { return c.layout().pp(); })
        .def_property_readonly("dp", [](const cost_model& c) { return c.layout().dp(); })
        .def(
            "document_seconds",
            [](const cost_model& c, const int64_arg& lengths) {
                const auto span = as_span(lengths, "lengths");
                std::vector<double> out(span.size());
                for (std::size_t i = 0; i < span.size(); ++i)
                    out[i] = c.document_fwd_seconds(span[i]);
                return owned(std::move(out), {static_cast<py::ssize_t>(span.size())});
            },
            py::arg("lengths"), R"doc(
Predicted forward seconds per layer of each whole document on one TP group (cp = 1): attention,
GEMMs, element-wise work and TP collectives: what the balancing packers compare.
)doc")
        .def(
            "micro_batch_seconds",
            [](const cost_model& c, const int64_arg& lengths) {
                runtime::micro_batch mb;
                for (const auto t : as_span(lengths, "lengths"))
                    mb.docs.push_back({0, t, 0});
                return c.micro_batch_fwd_seconds(mb);
            },
            py::arg("lengths"),
            "Predicted forward seconds per layer of a micro-batch of documents of these lengths.")
        .def(
            "step_measures",
            [](const cost_model& c, const packed_step& s) {
                return tuner::measure_step(s.batch(), c);
            },
            py::arg("step"), "The predicted balance of a packed step (StepMeasures).")
        .def(
            "sharding_measures",
            [](const cost_model& c, const cp_sharding& s) {
                return tuner::measure_sharding(s.decision.sharded, c);
            },
            py::arg("sharding"), "The predicted cost of a CP sharding (ShardMeasures).")
        .def("__repr__",
             [](const cost_model& c) {
                 return fmt::format("<CostModel {} on {}, {}>", c.model().name, c.hardware().name,
                                    c.layout().spec());
             })
        .def(py::pickle([](const cost_model& c) { return to_python(c.to_json()); },
                        [](const py::object& d) {
                            return std::make_shared<cost_model>(
                                cost_model::from_json(to_json_value(d, "CostModel"), "CostModel"));
                        }));
}

void bind_tuned_config(py::module_& m) {
    py::class_<tuner::tuned_config>(m, "TunedConfig", R"doc(
A tuned config (wlbtune.config/1, from `wlbtune tune`): the layout, context, model, hardware,
the data the tuner read, and the packing and CP sharding it chose. Read with load_config().
)doc")
        .def_readonly("layout", &tuner::tuned_config::layout_spec)
        .def_readonly("order", &tuner::tuned_config::layout_order)
        .def_readonly("context_tokens", &tuner::tuned_config::context_tokens)
        .def_property_readonly("model", [](const tuner::tuned_config& c) { return c.model.name; })
        .def_property_readonly("hardware",
                               [](const tuner::tuned_config& c) { return c.hardware.name; })
        .def_readonly("packing", &tuner::tuned_config::packing)
        .def_readonly("sharding", &tuner::tuned_config::sharding)
        .def_property_readonly(
            "data",
            [](const tuner::tuned_config& c) {
                py::dict d;
                d["spec"] = c.data.spec;
                d["description"] = c.data.description;
                d["context_policy"] = c.data.context_policy;
                d["shuffle_seed"] = c.data.shuffle_seed ? py::object(py::int_(*c.data.shuffle_seed))
                                                        : py::object(py::none());
                d["documents"] = c.data.documents;
                d["tokens"] = c.data.tokens;
                return d;
            },
            "The data the tuner read: spec, description, context_policy, shuffle_seed, ...")
        .def_readonly("schedule", &tuner::tuned_config::schedule)
        .def_readonly("partition", &tuner::tuned_config::partition)
        .def(
            "cost_model",
            [](const tuner::tuned_config& c) {
                // As `wlbtune pack --config` builds it (cli/common_options.cpp).
                return std::make_shared<cost_model>(
                    c.model, c.hardware, runtime::layout::parse(c.layout_spec, c.layout_order));
            },
            "The cost model of the config's model, hardware and layout.")
        .def("__repr__", [](const tuner::tuned_config& c) {
            return fmt::format("<TunedConfig {} on {}, {}, context {}: {} + {}>", c.model.name,
                               c.hardware.name, c.layout_spec, c.context_tokens,
                               tuner::describe(c.packing), tuner::describe_sharding(c.sharding));
        });

    m.def(
        "load_config",
        [](const std::string& path) {
            py::gil_scoped_release nogil;
            return tuner::read_tuned_config(path);
        },
        py::arg("path"), R"doc(
Reads a tuned config (wlbtune.config/1). ValueError "PATH: $.field: what" on a malformed one,
as `wlbtune pack --config PATH` reports it.
)doc");
}

} // namespace

void bind_settings(py::module_& m) {
    bind_packing_config(m);
    bind_sharding_spec(m);
    bind_cost_model(m);
    bind_tuned_config(m);
    m.def("packing_policies", &tuner::packing_policy_names, "The packing policy names.");
    m.def("sharding_policies", &tuner::sharding_policy_names, "The CP sharding policy names.");
    m.def("model_presets", &runtime::model_preset_names, "The model preset names.");
    m.def("hardware_presets", &tuner::hardware_preset_names, "The hardware preset names.");
    m.def(
        "causal_pairs",
        [](const int64_arg& lengths) {
            std::int64_t pairs = 0;
            for (const auto t : as_span(lengths, "lengths"))
                pairs += runtime::causal_pairs(t);
            return pairs;
        },
        py::arg("lengths"), R"doc(
Attention work of whole documents of these lengths under the causal document mask: the exact
number of (query, key) pairs, sum of d (d + 1) / 2.
)doc");
}

} // namespace wlb::python
