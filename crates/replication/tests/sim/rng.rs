//! The simulation's seeded generator: the whole run draws from one, so a seed replays it
//! exactly (`sluice_types::sim`, shared with the other simulations).

pub use sluice_types::sim::SimRng as Rng;
