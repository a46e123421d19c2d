export default {
	id: 'hello',
	handler: (router) => {
		router.get('/', (_req, res) => res.json({ message: 'hello from v1', release: 'v1' }));
	},
};
