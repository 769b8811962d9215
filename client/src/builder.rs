//! Building a DAG in Rust: [`JobBuilder`].

use rukong_core::dag::{DagSpec, TaskSpec};
use rukong_core::{TaskId, Value};

/// Builds a [`DagSpec`] task by task.
///
/// ```
/// use rukong_client::{JobBuilder, Local, LocalConfig};
/// use rukong_core::Value;
///
/// let mut job = JobBuilder::new("tiny");
/// job.task("a", "const").arg(2);
/// job.task("b", "const").arg(3);
/// job.task("c", "add").deps(["a", "b"]).arg(10);
/// job.output("c");
///
/// let local = Local::start(LocalConfig::default()).unwrap();
/// let report = local.run(job.build()).unwrap();
/// assert_eq!(report.output("c"), Some(&Value::Int(15)));
/// ```
#[derive(Clone, Debug, Default)]
pub struct JobBuilder {
    spec: DagSpec,
}

/// One task being built; methods chain.
#[derive(Debug)]
pub struct TaskBuilder<'a> {
    task: &'a mut TaskSpec,
}

impl JobBuilder {
    pub fn new(name: impl Into<String>) -> Self {
        JobBuilder {
            spec: DagSpec {
                name: name.into(),
                tasks: Vec::new(),
                outputs: None,
            },
        }
    }

    /// Adds a task calling function `func`.
    pub fn task(&mut self, id: impl Into<TaskId>, func: impl Into<String>) -> TaskBuilder<'_> {
        self.spec.tasks.push(TaskSpec {
            id: id.into(),
            func: func.into(),
            ..TaskSpec::default()
        });
        let task = self.spec.tasks.last_mut().expect("a task was just pushed");
        TaskBuilder { task }
    }

    /// Asks for `id`'s output (by default every sink's output is returned).
    pub fn output(&mut self, id: impl Into<TaskId>) -> &mut Self {
        self.spec
            .outputs
            .get_or_insert_with(Vec::new)
            .push(id.into());
        self
    }

    pub fn len(&self) -> usize {
        self.spec.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spec.tasks.is_empty()
    }

    pub fn build(self) -> DagSpec {
        self.spec
    }
}

impl TaskBuilder<'_> {
    pub fn dep(self, id: impl Into<TaskId>) -> Self {
        self.task.deps.push(id.into());
        self
    }

    pub fn deps<I, T>(self, ids: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<TaskId>,
    {
        self.task.deps.extend(ids.into_iter().map(Into::into));
        self
    }

    pub fn arg(self, v: impl Into<Value>) -> Self {
        self.task.args.push(v.into());
        self
    }

    pub fn retries(self, n: u32) -> Self {
        self.task.retries = Some(n);
        self
    }

    pub fn timeout_ms(self, ms: u64) -> Self {
        self.task.timeout_ms = Some(ms);
        self
    }

    /// Asks for `n` GPUs: the task runs on a GPU executor.
    pub fn gpu(self, n: u32) -> Self {
        self.task.resources = Some(rukong_core::dag::Resources { gpu: n });
        self
    }
}
