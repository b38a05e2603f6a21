"""jaxgen.parallel: meshes, logical-axis rules, sharded init/steps, context-parallel attention.

    from jaxgen.parallel import mesh, rules, sharding, steps
    m = mesh.make_mesh("data=2,fsdp=-1")                  # axes data, fsdp, context, tensor
    state, state_sh = steps.init_train_state(model, tx, m, rules.RULES, example, key)
    step = steps.shard_train_step(steps.train_step_fn(loss_fn, tx), m, rules.RULES, state_sh,
                                  sharding.batch_shardings(batch, m, rules.RULES))
    batch = sharding.global_batch(host_rows, m, rules.RULES, global_batch_size)  # multi-host
    state, metrics = step(state, batch, key)

Modules: mesh (MeshConfig, make_mesh), rules (RULES, make_rules, check_rules), sharding (use,
init_sharded, Sharded, global_batch), steps (train state, train step, sampling loop), context
(ring and Ulysses attention: attention_impl="ring" | "ulysses"), checks, memory (AOT memory).
Importing this package imports nothing else, so `jaxgen --help` stays instant.
"""
